//! Turns a parsed request into one SQL statement with bound parameters, the way PostgREST does:
//! identifiers are quoted, every value from the request is a parameter (sent as text and parsed
//! by Postgres as the type the statement gives it), and bodies go through
//! `json_populate_recordset` / `json_to_record`. Pure: nothing here talks to the database.
//!
//! Statements that return rows return exactly one: `(total bigint, page bigint, body text)`,
//! where `body` is the JSON array of the result (or the JSON value of a scalar function).

use super::query::{
    Condition, IsValue, Logic, Operand, Operator, OrderTerm, QueryPlan, SelectItem,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sql: String,
    /// `$1`, `$2`, … in order; `None` is SQL NULL.
    pub params: Vec<Option<String>>,
    /// `false` for `Prefer: return=minimal` mutations, which are executed for a row count only
    /// (no `RETURNING`, so the `SELECT` policies of RLS do not apply, as in PostgREST).
    pub returns_rows: bool,
}

/// A table, view or function in an exposed schema.
#[derive(Debug, Clone, Copy)]
pub struct Relation<'a> {
    pub schema: &'a str,
    pub name: &'a str,
}

impl Relation<'_> {
    fn qualified(&self) -> String {
        format!("{}.{}", ident(self.schema), ident(self.name))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    MergeDuplicates,
    IgnoreDuplicates,
}

/// What `on_conflict` (or the primary key) and `Prefer: resolution=…` ask of an insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upsert {
    pub resolution: Resolution,
    pub conflict_columns: Vec<String>,
}

/// What the catalog says about a function called through `/rpc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSignature {
    /// Input arguments in order: name and SQL type (as `format_type` prints it).
    pub arguments: Vec<(String, String)>,
    /// How many trailing arguments have defaults.
    pub defaults: usize,
    pub returns_set: bool,
    /// A composite or `record` result: rows with columns.
    pub returns_rows: bool,
    pub returns_void: bool,
}

impl FunctionSignature {
    /// Whether a call naming exactly `given` matches this function.
    pub fn accepts(&self, given: &[String]) -> bool {
        let required = self.arguments.len() - self.defaults.min(self.arguments.len());
        let known = |name: &String| self.arguments.iter().any(|(arg, _)| arg == name);
        given.iter().all(known)
            && self.arguments[..required]
                .iter()
                .all(|(name, _)| given.contains(name))
    }
}

/// `"name"` with embedded quotes doubled: safe for any string.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A Postgres array literal of text elements, each quoted: `{"a","b\"c"}`.
fn array_literal(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|item| format!("\"{}\"", item.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}

const SOURCE: &str = "_pgrst_source";
const ROW: &str = "_pgrst_row";
const CALL: &str = "_pgrst_call";
const ARGS: &str = "_pgrst_args";

#[derive(Default)]
struct Builder {
    params: Vec<Option<String>>,
}

impl Builder {
    fn bind(&mut self, value: Option<String>) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    fn finish(self, sql: String, returns_rows: bool) -> Statement {
        Statement {
            sql,
            params: self.params,
            returns_rows,
        }
    }

    fn select_list(items: &[SelectItem], qualifier: &str) -> String {
        if items.is_empty() {
            return format!("{qualifier}.*");
        }
        let rendered: Vec<String> = items
            .iter()
            .map(|item| {
                let Some(column) = &item.column else {
                    return format!("{qualifier}.*");
                };
                let value = format!("{qualifier}.{}", ident(column));
                let value = match &item.cast {
                    Some(cast) => format!("CAST({value} AS {cast})"),
                    None => value,
                };
                format!(
                    "{value} AS {}",
                    ident(item.alias.as_ref().unwrap_or(column))
                )
            })
            .collect();
        rendered.join(", ")
    }

    fn where_clause(&mut self, conditions: &[Condition], qualifier: &str) -> String {
        if conditions.is_empty() {
            return String::new();
        }
        let rendered: Vec<String> = conditions
            .iter()
            .map(|c| self.condition(c, qualifier))
            .collect();
        format!(" WHERE {}", rendered.join(" AND "))
    }

    fn condition(&mut self, condition: &Condition, qualifier: &str) -> String {
        let (negated, sql) = match condition {
            Condition::Compare {
                column,
                negated,
                operator,
                operand,
            } => {
                let column = format!("{qualifier}.{}", ident(column));
                (*negated, self.comparison(&column, *operator, operand))
            }
            Condition::Group {
                negated,
                logic,
                conditions,
            } => {
                let (joiner, empty) = match logic {
                    Logic::And => (" AND ", "true"),
                    Logic::Or => (" OR ", "false"),
                };
                let parts: Vec<String> = conditions
                    .iter()
                    .map(|c| self.condition(c, qualifier))
                    .collect();
                let sql = if parts.is_empty() {
                    empty.to_owned()
                } else {
                    format!("({})", parts.join(joiner))
                };
                (*negated, sql)
            }
        };
        if negated {
            format!("NOT {sql}")
        } else {
            sql
        }
    }

    fn comparison(&mut self, column: &str, operator: Operator, operand: &Operand) -> String {
        match operand {
            Operand::Keyword(keyword) => {
                let keyword = match keyword {
                    IsValue::Null => "NULL",
                    IsValue::True => "TRUE",
                    IsValue::False => "FALSE",
                    IsValue::Unknown => "UNKNOWN",
                };
                format!("({column} IS {keyword})")
            }
            Operand::List(items) if items.is_empty() => "false".to_owned(),
            Operand::List(items) => {
                let param = self.bind(Some(array_literal(items)));
                format!("({column} = ANY({param}))")
            }
            Operand::Value(value) => {
                let symbol = match operator {
                    Operator::Eq => "=",
                    Operator::Neq => "<>",
                    Operator::Gt => ">",
                    Operator::Gte => ">=",
                    Operator::Lt => "<",
                    Operator::Lte => "<=",
                    Operator::Like => "LIKE",
                    Operator::Ilike => "ILIKE",
                    Operator::Match => "~",
                    Operator::Imatch => "~*",
                    Operator::Contains => "@>",
                    Operator::ContainedIn => "<@",
                    Operator::Overlaps => "&&",
                    // The parser gives these keyword and list operands.
                    Operator::Is | Operator::In => "=",
                };
                let param = self.bind(Some(value.clone()));
                format!("({column} {symbol} {param})")
            }
        }
    }

    fn order_by(order: &[OrderTerm], qualifier: &str) -> String {
        if order.is_empty() {
            return String::new();
        }
        let terms: Vec<String> = order
            .iter()
            .map(|term| {
                let direction = if term.descending { "DESC" } else { "ASC" };
                let nulls = match term.nulls_first {
                    Some(true) => " NULLS FIRST",
                    Some(false) => " NULLS LAST",
                    None => "",
                };
                format!("{qualifier}.{} {direction}{nulls}", ident(&term.column))
            })
            .collect();
        format!(" ORDER BY {}", terms.join(", "))
    }

    fn paging(plan: &QueryPlan, max_rows: Option<u64>) -> String {
        let limit = match (plan.limit, max_rows) {
            (Some(limit), Some(max)) => Some(limit.min(max)),
            (limit, max) => limit.or(max),
        };
        let mut sql = String::new();
        if let Some(limit) = limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        if let Some(offset) = plan.offset {
            sql.push_str(&format!(" OFFSET {offset}"));
        }
        sql
    }

    /// Wraps a row source (a CTE body) into the `(total, page, body)` result.
    fn aggregate(source: &str, total: &str) -> String {
        format!(
            "WITH {SOURCE} AS ({source}) \
             SELECT {total}, count(*), coalesce(json_agg({ROW}), '[]')::text FROM {SOURCE} AS {ROW}"
        )
    }
}

/// `GET`/`HEAD` on a table or view. With `count`, `total` counts all rows the filters match.
pub fn read(relation: Relation, plan: &QueryPlan, count: bool, max_rows: Option<u64>) -> Statement {
    let mut builder = Builder::default();
    let table = format!("{} AS {ROW}", relation.qualified());
    let filter = builder.where_clause(&plan.conditions, ROW);
    let source = format!(
        "SELECT {} FROM {table}{filter}{}{}",
        Builder::select_list(&plan.select, ROW),
        Builder::order_by(&plan.order, ROW),
        Builder::paging(plan, max_rows),
    );
    let total = if count {
        format!("(SELECT count(*) FROM {table}{filter})")
    } else {
        "NULL::bigint".to_owned()
    };
    let sql = Builder::aggregate(&source, &total);
    builder.finish(sql, true)
}

/// `POST` on a table: `rows` is a JSON array of objects; `columns` the keys to insert.
pub fn insert(
    relation: Relation,
    plan: &QueryPlan,
    columns: &[String],
    rows: String,
    upsert: Option<&Upsert>,
    representation: bool,
) -> Statement {
    let mut builder = Builder::default();
    let table = relation.qualified();
    let names: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    let names = names.join(", ");
    let body = builder.bind(Some(rows));
    let mut sql = format!(
        "INSERT INTO {table} ({names}) SELECT {names} FROM json_populate_recordset(NULL::{table}, {body})"
    );
    if let Some(upsert) = upsert {
        let target: Vec<String> = upsert.conflict_columns.iter().map(|c| ident(c)).collect();
        let action = match upsert.resolution {
            Resolution::IgnoreDuplicates => "DO NOTHING".to_owned(),
            Resolution::MergeDuplicates => {
                let sets: Vec<String> = columns
                    .iter()
                    .map(|c| format!("{0} = EXCLUDED.{0}", ident(c)))
                    .collect();
                format!("DO UPDATE SET {}", sets.join(", "))
            }
        };
        sql.push_str(&format!(" ON CONFLICT ({}) {action}", target.join(", ")));
    }
    // `INSERT … RETURNING` inside a FROM needs to be a CTE of its own.
    if representation {
        let select = Builder::select_list(&plan.select, ROW);
        let sql = format!(
            "WITH {SOURCE} AS ({sql} RETURNING *) \
             SELECT NULL::bigint, count(*), coalesce(json_agg({ROW}), '[]')::text \
             FROM (SELECT {select} FROM {SOURCE} AS {ROW}) AS {ROW}"
        );
        return builder.finish(sql, true);
    }
    builder.finish(sql, false)
}

/// `PATCH`: `values` is one JSON object; `columns` its keys.
pub fn update(
    relation: Relation,
    plan: &QueryPlan,
    columns: &[String],
    values: String,
    representation: bool,
) -> Statement {
    let mut builder = Builder::default();
    let table = relation.qualified();
    let body = builder.bind(Some(values));
    let sets: Vec<String> = columns
        .iter()
        .map(|c| {
            format!(
                "{0} = (json_populate_record(NULL::{table}, {body})).{0}",
                ident(c)
            )
        })
        .collect();
    let filter = builder.where_clause(&plan.conditions, ROW);
    let mutation = format!("UPDATE {table} AS {ROW} SET {}{filter}", sets.join(", "));
    mutation_result(builder, mutation, plan, representation)
}

/// `DELETE`.
pub fn delete(relation: Relation, plan: &QueryPlan, representation: bool) -> Statement {
    let mut builder = Builder::default();
    let filter = builder.where_clause(&plan.conditions, ROW);
    let mutation = format!("DELETE FROM {} AS {ROW}{filter}", relation.qualified());
    mutation_result(builder, mutation, plan, representation)
}

fn mutation_result(
    builder: Builder,
    mutation: String,
    plan: &QueryPlan,
    representation: bool,
) -> Statement {
    if !representation {
        return builder.finish(mutation, false);
    }
    let select = Builder::select_list(&plan.select, ROW);
    let sql = format!(
        "WITH {SOURCE} AS ({mutation} RETURNING {ROW}.*) \
         SELECT NULL::bigint, count(*), coalesce(json_agg({ROW}), '[]')::text \
         FROM (SELECT {select} FROM {SOURCE} AS {ROW}) AS {ROW}"
    );
    builder.finish(sql, true)
}

/// `rpc/<fn>`: `arguments` is a JSON object holding exactly the `given` argument names.
pub fn call(
    function: Relation,
    signature: &FunctionSignature,
    given: &[String],
    arguments: String,
    plan: &QueryPlan,
    max_rows: Option<u64>,
) -> Statement {
    let mut builder = Builder::default();
    let passed: Vec<&(String, String)> = signature
        .arguments
        .iter()
        .filter(|(name, _)| given.contains(name))
        .collect();
    let args_from = if passed.is_empty() {
        format!("(SELECT) AS {ARGS}")
    } else {
        let body = builder.bind(Some(arguments));
        let columns: Vec<String> = passed
            .iter()
            .map(|(name, kind)| format!("{} {kind}", ident(name)))
            .collect();
        format!("json_to_record({body}) AS {ARGS}({})", columns.join(", "))
    };
    let named: Vec<String> = passed
        .iter()
        .map(|(name, _)| format!("{0} := {ARGS}.{0}", ident(name)))
        .collect();
    let invocation = format!("{}({})", function.qualified(), named.join(", "));

    if signature.returns_rows {
        let filter = builder.where_clause(&plan.conditions, CALL);
        let source = format!(
            "SELECT {} FROM {args_from} CROSS JOIN LATERAL {invocation} AS {CALL}{filter}{}{}",
            Builder::select_list(&plan.select, CALL),
            Builder::order_by(&plan.order, CALL),
            Builder::paging(plan, max_rows),
        );
        let sql = Builder::aggregate(&source, "NULL::bigint");
        return builder.finish(sql, true);
    }
    let sql = if signature.returns_set {
        format!(
            "SELECT NULL::bigint, count(*), coalesce(json_agg({CALL}), '[]')::text \
             FROM {args_from} CROSS JOIN LATERAL {invocation} AS {CALL}"
        )
    } else if signature.returns_void {
        format!(
            "SELECT NULL::bigint, 1::bigint, NULL::text \
             FROM {args_from} CROSS JOIN LATERAL (SELECT {invocation}) AS {CALL}"
        )
    } else {
        format!(
            "SELECT NULL::bigint, 1::bigint, to_json({CALL}.value)::text \
             FROM {args_from} CROSS JOIN LATERAL (SELECT {invocation} AS value) AS {CALL}"
        )
    };
    builder.finish(sql, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRIPS: Relation = Relation {
        schema: "public",
        name: "trips",
    };

    fn plan(query: &str) -> QueryPlan {
        QueryPlan::parse(query, &[]).unwrap()
    }

    #[test]
    fn request_values_are_parameters_never_sql() {
        let hostile = "x'); drop table trips; --";
        let statement = read(
            TRIPS,
            &plan(&format!("name=eq.{hostile}&id=in.(1,\"a\\\"b\")")),
            false,
            None,
        );
        assert!(!statement.sql.contains("drop table"), "{}", statement.sql);
        assert_eq!(
            statement.params,
            vec![Some(hostile.to_owned()), Some(r#"{"1","a\"b"}"#.to_owned())]
        );
        assert!(statement.sql.contains(r#"(_pgrst_row."name" = $1)"#));
        assert!(statement.sql.contains(r#"(_pgrst_row."id" = ANY($2))"#));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident(r#"we"ird"#), r#""we""ird""#);
        let statement = read(
            Relation {
                schema: "public",
                name: r#"t"; drop"#,
            },
            &plan(""),
            false,
            None,
        );
        assert!(statement.sql.contains(r#""public"."t""; drop""#));
    }

    #[test]
    fn reads_page_order_and_count() {
        let statement = read(
            TRIPS,
            &plan("select=id,title:name&order=start_date.desc.nullslast&limit=5000&offset=10&status=neq.archived"),
            true,
            Some(1000),
        );
        assert!(statement.sql.contains(
            r#"SELECT _pgrst_row."id" AS "id", _pgrst_row."name" AS "title" FROM "public"."trips" AS _pgrst_row WHERE (_pgrst_row."status" <> $1) ORDER BY _pgrst_row."start_date" DESC NULLS LAST LIMIT 1000 OFFSET 10"#
        ), "{}", statement.sql);
        assert!(statement.sql.contains(
            r#"(SELECT count(*) FROM "public"."trips" AS _pgrst_row WHERE (_pgrst_row."status" <> $1))"#
        ));
    }

    #[test]
    fn minimal_mutations_have_no_returning() {
        let statement = insert(TRIPS, &plan(""), &["name".into()], "[]".into(), None, false);
        assert!(!statement.returns_rows);
        assert!(!statement.sql.contains("RETURNING"));
        let statement = delete(TRIPS, &plan("id=eq.1"), true);
        assert!(statement.returns_rows);
        assert!(statement.sql.contains("RETURNING _pgrst_row.*"));
    }

    #[test]
    fn upserts_name_their_conflict_target() {
        let upsert = Upsert {
            resolution: Resolution::MergeDuplicates,
            conflict_columns: vec!["user_id".into(), "category".into()],
        };
        let statement = insert(
            TRIPS,
            &plan(""),
            &["user_id".into(), "category".into(), "value".into()],
            "[]".into(),
            Some(&upsert),
            false,
        );
        assert!(statement.sql.ends_with(
            r#"ON CONFLICT ("user_id", "category") DO UPDATE SET "user_id" = EXCLUDED."user_id", "category" = EXCLUDED."category", "value" = EXCLUDED."value""#
        ), "{}", statement.sql);
    }

    #[test]
    fn functions_match_by_argument_names() {
        let signature = FunctionSignature {
            arguments: vec![("a".into(), "uuid".into()), ("b".into(), "text".into())],
            defaults: 1,
            returns_set: false,
            returns_rows: false,
            returns_void: false,
        };
        assert!(signature.accepts(&["a".into()]));
        assert!(signature.accepts(&["b".into(), "a".into()]));
        assert!(!signature.accepts(&["b".into()]));
        assert!(!signature.accepts(&["a".into(), "c".into()]));
        let statement = call(
            Relation {
                schema: "public",
                name: "f",
            },
            &signature,
            &["a".into()],
            r#"{"a":"x"}"#.into(),
            &plan(""),
            None,
        );
        assert!(statement.sql.contains(
            r#"json_to_record($1) AS _pgrst_args("a" uuid) CROSS JOIN LATERAL (SELECT "public"."f"("a" := _pgrst_args."a") AS value)"#
        ), "{}", statement.sql);
    }
}

//! PostgREST's URL grammar, parsed into plain values: `select`, horizontal filters (`col=op.value`,
//! `not.`, `or=(…)`/`and=(…)` trees), `order`, `limit`, `offset`, `on_conflict`, `columns`.
//! Pure: no SQL here; [`super::sql`] turns these values into bound statements.

use super::error::ApiError;

/// One item of `select=`: `*`, `column`, `alias:column` or `column::type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectItem {
    /// `None` for `*`.
    pub column: Option<String>,
    pub alias: Option<String>,
    pub cast: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    Like,
    Ilike,
    Match,
    Imatch,
    Is,
    In,
    Contains,
    ContainedIn,
    Overlaps,
}

impl Operator {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "eq" => Self::Eq,
            "neq" => Self::Neq,
            "gt" => Self::Gt,
            "gte" => Self::Gte,
            "lt" => Self::Lt,
            "lte" => Self::Lte,
            "like" => Self::Like,
            "ilike" => Self::Ilike,
            "match" => Self::Match,
            "imatch" => Self::Imatch,
            "is" => Self::Is,
            "in" => Self::In,
            "cs" => Self::Contains,
            "cd" => Self::ContainedIn,
            "ov" => Self::Overlaps,
            _ => return None,
        })
    }
}

/// The operand of an operator, already in the form the operator needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// Sent as a text parameter and parsed by Postgres as the column's type.
    Value(String),
    /// `in.(a,b)`: each element a text parameter.
    List(Vec<String>),
    /// `is.null|true|false|unknown`: a keyword, never a parameter.
    Keyword(IsValue),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsValue {
    Null,
    True,
    False,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logic {
    And,
    Or,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Compare {
        column: String,
        negated: bool,
        operator: Operator,
        operand: Operand,
    },
    Group {
        negated: bool,
        logic: Logic,
        conditions: Vec<Condition>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTerm {
    pub column: String,
    pub descending: bool,
    /// `Some(true)` for `nullsfirst`, `Some(false)` for `nullslast`.
    pub nulls_first: Option<bool>,
}

/// Everything the query string says, with unrecognised keys kept for `rpc` arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryPlan {
    /// Empty means `*`.
    pub select: Vec<SelectItem>,
    /// All must hold.
    pub conditions: Vec<Condition>,
    pub order: Vec<OrderTerm>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub on_conflict: Option<Vec<String>>,
    pub columns: Option<Vec<String>>,
    /// `key=value` pairs that are not PostgREST keywords: arguments of a `GET /rpc/<fn>`.
    pub arguments: Vec<(String, String)>,
}

impl QueryPlan {
    /// Parses a raw (still percent-encoded) query string. For `rpc`, pairs whose key is in
    /// `argument_names` are arguments rather than filters.
    pub fn parse(query: &str, argument_names: &[String]) -> Result<Self, ApiError> {
        let mut plan = Self::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let (key, value) = (key.as_ref(), value.as_ref());
            match key {
                "select" => plan.select = parse_select(value)?,
                "order" => plan.order = parse_order(value)?,
                "limit" => plan.limit = Some(parse_count("limit", value)?),
                "offset" => plan.offset = Some(parse_count("offset", value)?),
                "on_conflict" => plan.on_conflict = Some(parse_names(value)?),
                "columns" => plan.columns = Some(parse_names(value)?),
                // supabase-js may repeat the key in the URL; the gateway took it already.
                "apikey" => {}
                "or" | "and" | "not.or" | "not.and" => {
                    let negated = key.starts_with("not.");
                    let logic = if key.ends_with("or") {
                        Logic::Or
                    } else {
                        Logic::And
                    };
                    plan.conditions.push(parse_group(negated, logic, value, 1)?);
                }
                _ if argument_names.iter().any(|name| name == key) => {
                    plan.arguments.push((key.to_owned(), value.to_owned()));
                }
                _ => plan.conditions.push(parse_filter(key, value)?),
            }
        }
        Ok(plan)
    }
}

fn parse_error(message: impl Into<String>, details: impl Into<String>) -> ApiError {
    ApiError::parse(message.into(), details.into())
}

fn parse_count(key: &str, value: &str) -> Result<u64, ApiError> {
    value.parse().map_err(|_| {
        parse_error(
            format!("\"failed to parse {key} parameter ({})\"", quoted(value)),
            "expected a non-negative integer",
        )
    })
}

/// A column name as PostgREST accepts it in a URL: anything but its separators.
fn checked_name<'a>(name: &'a str, context: &str) -> Result<&'a str, ApiError> {
    let name = name.trim();
    let bad = name.is_empty()
        || name
            .chars()
            .any(|c| matches!(c, '(' | ')' | ',' | ':' | '"') || c.is_control());
    if bad {
        return Err(parse_error(
            format!("\"failed to parse {context}\""),
            format!("invalid column name `{}`", quoted(name)),
        ));
    }
    if name.contains("->") {
        return Err(parse_error(
            format!("\"failed to parse {context}\""),
            "JSON paths (->, ->>) are not supported by the local stack",
        ));
    }
    Ok(name)
}

/// `a,b` or, as supabase-js sends `columns`, `"a","b"`.
fn parse_names(value: &str) -> Result<Vec<String>, ApiError> {
    split_top_level(value)
        .into_iter()
        .map(|name| {
            let name = unquote(name.trim());
            checked_name(&name, "columns").map(str::to_owned)
        })
        .collect()
}

fn parse_select(value: &str) -> Result<Vec<SelectItem>, ApiError> {
    let mut items = Vec::new();
    for raw in split_top_level(value) {
        let raw = raw.trim();
        if raw.contains('(') {
            return Err(parse_error(
                format!("\"failed to parse select parameter ({})\"", quoted(value)),
                "resource embedding is not supported by the local stack",
            ));
        }
        if raw == "*" {
            items.push(SelectItem {
                column: None,
                alias: None,
                cast: None,
            });
            continue;
        }
        let (alias, rest) = match raw.split_once(':') {
            Some((alias, rest)) if !rest.starts_with(':') => (Some(alias), rest),
            _ => (None, raw),
        };
        let (column, cast) = match rest.split_once("::") {
            Some((column, cast)) => (column, Some(checked_type(cast)?)),
            None => (rest, None),
        };
        items.push(SelectItem {
            column: Some(checked_name(column, "select parameter")?.to_owned()),
            alias: alias
                .map(|alias| checked_name(alias, "select parameter").map(str::to_owned))
                .transpose()?,
            cast,
        });
    }
    Ok(items)
}

/// A type name for `::cast`: letters, digits, `_`, spaces and `[]`, which cannot leave the cast.
fn checked_type(name: &str) -> Result<String, ApiError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ' ' | '[' | ']'));
    if ok {
        Ok(name.to_owned())
    } else {
        Err(parse_error(
            "\"failed to parse select parameter\"",
            format!("invalid cast type `{}`", quoted(name)),
        ))
    }
}

fn parse_order(value: &str) -> Result<Vec<OrderTerm>, ApiError> {
    value
        .split(',')
        .map(|term| {
            let mut parts = term.split('.');
            let column = checked_name(parts.next().unwrap_or_default(), "order")?.to_owned();
            let mut order = OrderTerm {
                column,
                descending: false,
                nulls_first: None,
            };
            for modifier in parts {
                match modifier {
                    "asc" => order.descending = false,
                    "desc" => order.descending = true,
                    "nullsfirst" => order.nulls_first = Some(true),
                    "nullslast" => order.nulls_first = Some(false),
                    other => {
                        return Err(parse_error(
                            format!("\"failed to parse order ({})\"", quoted(value)),
                            format!(
                                "unexpected `{}`, expected asc, desc, nullsfirst or nullslast",
                                quoted(other)
                            ),
                        ))
                    }
                }
            }
            Ok(order)
        })
        .collect()
}

/// `column=[not.]op.value`.
fn parse_filter(column: &str, value: &str) -> Result<Condition, ApiError> {
    let column = checked_name(column, "filter")?.to_owned();
    let (negated, rest) = match value.strip_prefix("not.") {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let failed = || {
        parse_error(
            format!("\"failed to parse filter ({})\"", quoted(value)),
            "expected [not.]<operator>.<value> with operator one of eq, neq, gt, gte, lt, lte, \
             like, ilike, match, imatch, is, in, cs, cd, ov",
        )
    };
    let (name, raw) = rest.split_once('.').ok_or_else(failed)?;
    let operator = Operator::parse(name).ok_or_else(failed)?;
    let operand = match operator {
        Operator::Is => Operand::Keyword(match raw.to_ascii_lowercase().as_str() {
            "null" => IsValue::Null,
            "true" => IsValue::True,
            "false" => IsValue::False,
            "unknown" => IsValue::Unknown,
            _ => return Err(failed()),
        }),
        Operator::In => Operand::List(parse_list(raw).ok_or_else(failed)?),
        Operator::Like | Operator::Ilike => Operand::Value(unquote(raw).replace('*', "%")),
        _ => Operand::Value(unquote(raw)),
    };
    Ok(Condition::Compare {
        column,
        negated,
        operator,
        operand,
    })
}

/// `(a,"b,c",d)` → `["a", "b,c", "d"]`.
fn parse_list(raw: &str) -> Option<Vec<String>> {
    let inner = raw.strip_prefix('(')?.strip_suffix(')')?;
    if inner.trim().is_empty() {
        return Some(Vec::new());
    }
    Some(split_top_level(inner).into_iter().map(unquote).collect())
}

/// How deeply `and(…)` / `or(…)` groups may nest, counting the top-level `or=` / `and=` as 1.
/// Each level is a recursion here, in the SQL writer and in the tree's drop: without a limit a
/// query string of a few kilobytes overflows the stack.
pub const MAX_LOGIC_DEPTH: usize = 32;

/// How much of a caller's value an error message quotes.
const QUOTE_LIMIT: usize = 200;

/// `value` for an error message: at most [`QUOTE_LIMIT`] characters.
fn quoted(value: &str) -> String {
    match value.char_indices().nth(QUOTE_LIMIT) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}

/// `(cond,cond,…)` where each condition is `column.[not.]op.value` or a nested `[not.]and(…)` /
/// `[not.]or(…)`, at nesting level `depth`.
fn parse_group(
    negated: bool,
    logic: Logic,
    value: &str,
    depth: usize,
) -> Result<Condition, ApiError> {
    let failed = |detail: String| {
        parse_error(
            format!("\"failed to parse logic tree ({})\"", quoted(value)),
            detail,
        )
    };
    if depth > MAX_LOGIC_DEPTH {
        return Err(failed(format!(
            "logic trees nest at most {MAX_LOGIC_DEPTH} levels deep"
        )));
    }
    let inner = value
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .ok_or_else(|| failed("expected the conditions in parentheses".into()))?;
    let mut conditions = Vec::new();
    for item in split_top_level(inner) {
        let item = item.trim();
        let nested = [
            ("and(", false, Logic::And),
            ("or(", false, Logic::Or),
            ("not.and(", true, Logic::And),
            ("not.or(", true, Logic::Or),
        ]
        .into_iter()
        .find(|(prefix, _, _)| item.starts_with(prefix));
        if let Some((prefix, negated, logic)) = nested {
            let group = &item[prefix.len() - 1..];
            conditions.push(parse_group(negated, logic, group, depth + 1)?);
            continue;
        }
        let (column, filter) = item
            .split_once('.')
            .ok_or_else(|| failed(format!("`{}` is not column.operator.value", quoted(item))))?;
        conditions.push(parse_filter(column, filter)?);
    }
    Ok(Condition::Group {
        negated,
        logic,
        conditions,
    })
}

/// Splits on commas outside parentheses and double quotes.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut escaped, mut start) = (0usize, false, false, 0);
    for (index, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.saturating_sub(1),
            ',' if !quoted && depth == 0 => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// `"a \"b\""` → `a "b"`; anything not wholly quoted is returned as is.
fn unquote(raw: &str) -> String {
    let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return raw.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn plan(query: &str) -> QueryPlan {
        QueryPlan::parse(query, &[]).unwrap()
    }

    fn compare(column: &str, negated: bool, operator: Operator, operand: Operand) -> Condition {
        Condition::Compare {
            column: column.into(),
            negated,
            operator,
            operand,
        }
    }

    fn value(v: &str) -> Operand {
        Operand::Value(v.into())
    }

    #[test]
    fn filters_parse_into_operator_and_operand() {
        let parsed = plan("name=eq.Paris&age=not.gte.18&note=like.*trip*&tags=cs.%7Ba,b%7D&x=is.NULL&id=in.(1,%222,3%22)");
        assert_eq!(
            parsed.conditions,
            vec![
                compare("name", false, Operator::Eq, value("Paris")),
                compare("age", true, Operator::Gte, value("18")),
                compare("note", false, Operator::Like, value("%trip%")),
                compare("tags", false, Operator::Contains, value("{a,b}")),
                compare("x", false, Operator::Is, Operand::Keyword(IsValue::Null)),
                compare(
                    "id",
                    false,
                    Operator::In,
                    Operand::List(vec!["1".into(), "2,3".into()])
                ),
            ]
        );
    }

    #[test]
    fn values_keep_dots_and_plus_decodes_to_space() {
        assert_eq!(
            plan("email=eq.a.b%40x.io&city=eq.New+York").conditions,
            vec![
                compare("email", false, Operator::Eq, value("a.b@x.io")),
                compare("city", false, Operator::Eq, value("New York")),
            ]
        );
    }

    #[test]
    fn logic_trees_nest() {
        let parsed =
            plan("or=(age.lt.18,and(status.eq.active,name.not.ilike.*x*),not.or(a.is.true))");
        assert_eq!(
            parsed.conditions,
            vec![Condition::Group {
                negated: false,
                logic: Logic::Or,
                conditions: vec![
                    compare("age", false, Operator::Lt, value("18")),
                    Condition::Group {
                        negated: false,
                        logic: Logic::And,
                        conditions: vec![
                            compare("status", false, Operator::Eq, value("active")),
                            compare("name", true, Operator::Ilike, value("%x%")),
                        ],
                    },
                    Condition::Group {
                        negated: true,
                        logic: Logic::Or,
                        conditions: vec![compare(
                            "a",
                            false,
                            Operator::Is,
                            Operand::Keyword(IsValue::True)
                        )],
                    },
                ],
            }]
        );
    }

    #[test]
    fn select_order_and_paging() {
        let parsed = plan("select=id,title:name,budget::text,*&order=start_date.desc.nullslast,id&limit=10&offset=20&on_conflict=user_id,category");
        assert_eq!(parsed.select.len(), 4);
        assert_eq!(
            parsed.select[1],
            SelectItem {
                column: Some("name".into()),
                alias: Some("title".into()),
                cast: None
            }
        );
        assert_eq!(parsed.select[2].cast.as_deref(), Some("text"));
        assert_eq!(parsed.select[3].column, None);
        assert_eq!(
            parsed.order,
            vec![
                OrderTerm {
                    column: "start_date".into(),
                    descending: true,
                    nulls_first: Some(false)
                },
                OrderTerm {
                    column: "id".into(),
                    descending: false,
                    nulls_first: None
                },
            ]
        );
        assert_eq!((parsed.limit, parsed.offset), (Some(10), Some(20)));
        assert_eq!(
            plan("columns=%22user_id%22,%22name%22").columns,
            Some(vec!["user_id".into(), "name".into()])
        );
        assert_eq!(
            parsed.on_conflict,
            Some(vec!["user_id".into(), "category".into()])
        );
    }

    #[test]
    fn rpc_arguments_are_separated_from_filters() {
        let parsed = QueryPlan::parse("p_user=abc&status=eq.x", &["p_user".into()]).unwrap();
        assert_eq!(parsed.arguments, vec![("p_user".into(), "abc".into())]);
        assert_eq!(parsed.conditions.len(), 1);
    }

    #[test]
    fn malformed_queries_are_parse_errors() {
        for query in [
            "name=Paris",
            "name=foo.bar",
            "x=is.maybe",
            "id=in.1,2",
            "limit=-1",
            "order=id.sideways",
            "select=trips(*)",
            "select=id::text;drop",
            "or=age.lt.18",
            "or=(nodot)",
            "a%22b=eq.1",
            "data->>x=eq.1",
        ] {
            let error = QueryPlan::parse(query, &[]).unwrap_err();
            assert_eq!(error.code, "PGRST100", "{query}");
        }
    }

    fn depth_of(condition: &Condition) -> usize {
        match condition {
            Condition::Compare { .. } => 0,
            Condition::Group { conditions, .. } => {
                1 + conditions.iter().map(depth_of).max().unwrap_or(0)
            }
        }
    }

    fn leaves(condition: &Condition) -> usize {
        match condition {
            Condition::Compare { .. } => 1,
            Condition::Group { conditions, .. } => conditions.iter().map(leaves).sum(),
        }
    }

    /// A query string whose logic tree nests one level per `kinds` entry (negated, logic), each
    /// level holding `width` comparisons and then the next level.
    fn nested(kinds: &[(bool, Logic)], width: usize) -> String {
        let name = |(negated, logic): (bool, Logic)| {
            let logic = match logic {
                Logic::And => "and",
                Logic::Or => "or",
            };
            if negated {
                format!("not.{logic}")
            } else {
                logic.to_owned()
            }
        };
        let mut inner = String::new();
        for (level, kind) in kinds.iter().enumerate().rev() {
            let mut items: Vec<String> = (0..width).map(|i| format!("c{i}.eq.{level}")).collect();
            if !inner.is_empty() {
                items.push(inner);
            }
            let group = format!("({})", items.join(","));
            inner = if level == 0 {
                format!("{}={group}", name(*kind))
            } else {
                format!("{}{group}", name(*kind))
            };
        }
        inner
    }

    fn kind() -> impl Strategy<Value = (bool, Logic)> {
        (
            any::<bool>(),
            prop_oneof![Just(Logic::And), Just(Logic::Or)],
        )
    }

    proptest! {
        #[test]
        fn logic_trees_parse_exactly_up_to_the_depth_limit(
            kinds in prop::collection::vec(kind(), 1..=MAX_LOGIC_DEPTH * 2),
            width in 1usize..4,
        ) {
            let query = nested(&kinds, width);
            match QueryPlan::parse(&query, &[]) {
                Ok(plan) => {
                    prop_assert!(kinds.len() <= MAX_LOGIC_DEPTH);
                    prop_assert_eq!(depth_of(&plan.conditions[0]), kinds.len());
                    prop_assert_eq!(leaves(&plan.conditions[0]), kinds.len() * width);
                }
                Err(error) => {
                    prop_assert!(kinds.len() > MAX_LOGIC_DEPTH, "{query}: {error:?}");
                    prop_assert_eq!(error.code, "PGRST100");
                    prop_assert_eq!(
                        error.details.as_deref(),
                        Some("logic trees nest at most 32 levels deep")
                    );
                }
            }
        }

        #[test]
        fn wide_logic_trees_keep_every_condition(
            kinds in prop::collection::vec(kind(), 1..4),
            width in 1usize..2_000,
        ) {
            let plan = QueryPlan::parse(&nested(&kinds, width), &[]).unwrap();
            prop_assert_eq!(leaves(&plan.conditions[0]), kinds.len() * width);
        }

        #[test]
        fn any_logic_value_parses_or_is_a_parse_error(value in r#"[()a-z.,"\\ ]{0,400}"#) {
            for key in ["or", "not.and"] {
                let query = format!("{key}={}", value.replace(' ', "%20"));
                if let Err(error) = QueryPlan::parse(&query, &[]) {
                    prop_assert_eq!(error.code, "PGRST100");
                }
            }
        }
    }

    #[test]
    fn a_tree_thousands_of_levels_deep_is_refused_not_a_stack_overflow() {
        let query = format!("or=({}a.eq.1{})", "and(".repeat(10_000), ")".repeat(10_000));
        let error = QueryPlan::parse(&query, &[]).unwrap_err();
        assert_eq!(error.code, "PGRST100");
        assert!(
            error.message.chars().count() < QUOTE_LIMIT + 50,
            "{}",
            error.message
        );
    }
}

//! What the API reads from the database's catalog: a table's primary key, a function's
//! signatures.

use deadpool_postgres::Transaction;

use super::sql::{FunctionSignature, Relation};

/// The primary key's columns of `relation`, in key order.
pub(super) async fn primary_key(
    transaction: &Transaction<'_>,
    relation: Relation<'_>,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let statement = transaction
        .prepare_cached(
            "SELECT a.attname::text \
             FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass \
               AND i.indisprimary \
             ORDER BY array_position(i.indkey::int2[], a.attnum)",
        )
        .await?;
    let rows = transaction
        .query(&statement, &[&relation.schema, &relation.name])
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// The overloads of `function` that named JSON arguments can call (every input argument named).
pub(super) async fn function_signatures(
    transaction: &Transaction<'_>,
    function: Relation<'_>,
) -> Result<Vec<FunctionSignature>, tokio_postgres::Error> {
    let statement = transaction
        .prepare_cached(
            "SELECT coalesce(p.proargnames, '{}'::text[]), \
                    coalesce(p.proargmodes::text[], '{}'::text[]), \
                    array(SELECT format_type(t, NULL) \
                          FROM unnest(p.proargtypes) WITH ORDINALITY AS a(t, n) ORDER BY n), \
                    p.pronargdefaults::int4, \
                    p.proretset, \
                    rt.typtype = 'c' OR p.prorettype = 'record'::regtype, \
                    p.prorettype = 'void'::regtype \
             FROM pg_proc p \
             JOIN pg_namespace n ON n.oid = p.pronamespace \
             JOIN pg_type rt ON rt.oid = p.prorettype \
             WHERE n.nspname = $1 AND p.proname = $2 AND p.prokind = 'f'",
        )
        .await?;
    let rows = transaction
        .query(&statement, &[&function.schema, &function.name])
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let names: Vec<String> = row.get(0);
            let modes: Vec<String> = row.get(1);
            let types: Vec<String> = row.get(2);
            let input_names: Vec<String> = if modes.is_empty() {
                names
            } else {
                names
                    .into_iter()
                    .zip(modes)
                    .filter(|(_, mode)| matches!(mode.as_str(), "i" | "b" | "v"))
                    .map(|(name, _)| name)
                    .collect()
            };
            // Functions with unnamed arguments cannot be called with named JSON arguments.
            if input_names.len() != types.len() || input_names.iter().any(String::is_empty) {
                return None;
            }
            Some(FunctionSignature {
                arguments: input_names.into_iter().zip(types).collect(),
                defaults: usize::try_from(row.get::<_, i32>(3)).unwrap_or(0),
                returns_set: row.get(4),
                returns_rows: row.get(5),
                returns_void: row.get(6),
            })
        })
        .collect())
}

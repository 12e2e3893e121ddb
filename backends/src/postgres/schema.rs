//! The schema and its versions: created on first use, migrated forward step by step, in one
//! transaction under an advisory lock (see the [module docs](super)).

use blobjobs_store_api::{Error, ErrorKind, Result};

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i32 = 1;

/// The advisory lock that serialises schema changes across processes ("blobjobs" in ASCII).
const LOCK: i64 = 0x626c_6f62_6a6f_6273;

/// Migration steps: `STEPS[n - 1]` takes a database from version `n - 1` to `n`. Append new
/// steps; never edit one that has shipped.
const STEPS: &[&str] = &["CREATE TABLE blobjobs_blobs (
        store bytea NOT NULL,
        key bytea NOT NULL,
        value bytea NOT NULL,
        metadata text NOT NULL,
        etag text NOT NULL,
        size bigint NOT NULL,
        modified_ms bigint NOT NULL,
        PRIMARY KEY (store, key)
    )"];

/// Creates or upgrades the schema in one transaction on `client`.
pub(crate) async fn ensure(
    client: &mut tokio_postgres::Client,
) -> std::result::Result<Result<()>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS blobjobs_schema (
            singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            version integer NOT NULL
        )",
    )
    .await?;
    let row = tx
        .query_opt("SELECT version FROM blobjobs_schema", &[])
        .await?;
    let current: i32 = row.map(|r| r.get(0)).unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Ok(Err(Error::new(
            ErrorKind::Protocol,
            format!(
                "the database holds blobjobs schema version {current}, newer than version {SCHEMA_VERSION} of this build: upgrade blobjobs"
            ),
        )));
    }
    if current == SCHEMA_VERSION {
        return Ok(Ok(()));
    }
    for step in &STEPS[usize::try_from(current).unwrap_or(0)..] {
        tx.batch_execute(step).await?;
    }
    tx.execute(
        "INSERT INTO blobjobs_schema (singleton, version) VALUES (true, $1)
         ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version",
        &[&SCHEMA_VERSION],
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_is_one_step_per_version() {
        assert_eq!(STEPS.len(), usize::try_from(SCHEMA_VERSION).unwrap_or(0));
    }
}

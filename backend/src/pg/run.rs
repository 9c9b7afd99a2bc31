//! Running a use case on PostgreSQL: one transaction on a pooled connection, driven from a
//! blocking thread through the [`crate::sql::Tx`] surface the SQLite writer uses too.
//!
//! Writes run at READ COMMITTED: the accept's conditional `UPDATE … WHERE state = 'open'` waits
//! for a concurrent writer of the same row and then re-checks it, so exactly one matches. A
//! transaction PostgreSQL aborts for a serialization failure or a deadlock (40001, 40P01) is run
//! again from the start, up to [`MAX_ATTEMPTS`] times; then the caller sees the error. A change
//! log head taken by the transaction is announced to the other instances at commit
//! ([`super::wakeups`]).

use super::{Pg, PgError};
use crate::sql::{PgTx, SqlError, Tx};
use tokio::runtime::Handle;
use tokio_postgres::IsolationLevel;

/// Runs of one transaction before a transient conflict is given to the caller.
pub const MAX_ATTEMPTS: u32 = 8;

/// Read-write or read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// READ COMMITTED, read-write.
    Write,
    /// REPEATABLE READ, read-only: one consistent snapshot for a multi-statement read.
    Read,
}

/// What one run of a transaction ended with.
enum Run<T, E> {
    Done(Result<T, E>),
    /// Aborted for a transient conflict: run it again.
    Again(E),
}

impl Pg {
    /// Runs `f` in one transaction: the connection is taken from the pool here (waiting without a
    /// thread), then the transaction runs on tokio's blocking pool — so at most the pool's size of
    /// blocking threads run PostgreSQL work at once, however many requests wait.
    pub async fn run<T, E, F>(&self, mode: Mode, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<PgError> + From<SqlError> + Send + 'static,
        F: FnMut(&Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let client = self.pool.get().await.map_err(PgError::from)?;
        let (pg, rt) = (self.clone(), Handle::current());
        tokio::task::spawn_blocking(move || pg.run_on(client, &rt, mode, f))
            .await
            .unwrap_or_else(|e| Err(E::from(PgError::Pool(format!("transaction task: {e}")))))
    }

    /// [`Pg::run`] from a thread that may block (start-up); `rt` drives the statements.
    pub fn run_blocking<T, E, F>(&self, rt: &Handle, mode: Mode, f: F) -> Result<T, E>
    where
        E: From<PgError> + From<SqlError>,
        F: FnMut(&Tx<'_>) -> Result<T, E>,
    {
        let client = rt.block_on(self.pool.get()).map_err(PgError::from)?;
        self.run_on(client, rt, mode, f)
    }

    /// Runs `f` on `client`; transient conflicts run it again (so `f` must be repeatable: it only
    /// reads its captures).
    fn run_on<T, E, F>(
        &self,
        mut client: deadpool_postgres::Object,
        rt: &Handle,
        mode: Mode,
        mut f: F,
    ) -> Result<T, E>
    where
        E: From<PgError> + From<SqlError>,
        F: FnMut(&Tx<'_>) -> Result<T, E>,
    {
        let mut attempt = 1;
        loop {
            match Self::run_once(&mut client, rt, mode, &mut f)? {
                Run::Done(result) => return result,
                Run::Again(e) if attempt >= MAX_ATTEMPTS => return Err(e),
                Run::Again(_) => {
                    self.retried.inc();
                    attempt += 1;
                }
            }
        }
    }

    fn run_once<T, E, F>(
        client: &mut deadpool_postgres::Object,
        rt: &Handle,
        mode: Mode,
        f: &mut F,
    ) -> Result<Run<T, E>, E>
    where
        E: From<PgError> + From<SqlError>,
        F: FnMut(&Tx<'_>) -> Result<T, E>,
    {
        let builder = client.build_transaction();
        let builder = match mode {
            Mode::Write => builder.isolation_level(IsolationLevel::ReadCommitted),
            Mode::Read => builder
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true),
        };
        let tx = rt.block_on(builder.start()).map_err(SqlError::from)?;
        let (outcome, head, transient) = {
            let pg = PgTx::new(&tx, rt.clone(), matches!(mode, Mode::Write));
            let outcome = f(&Tx::Postgres(&pg));
            (outcome, pg.head(), pg.saw_transient())
        };
        match outcome {
            Ok(value) => {
                let committed = rt.block_on(async {
                    if let Some(head) = head {
                        super::wakeups::announce(&tx, head).await?;
                    }
                    tx.commit().await.map_err(PgError::from)
                });
                match committed {
                    Ok(()) => Ok(Run::Done(Ok(value))),
                    Err(PgError::Postgres(e)) if crate::sql::is_transient(&e) => {
                        Ok(Run::Again(E::from(SqlError::Postgres(e))))
                    }
                    Err(e) => Err(E::from(e)),
                }
            }
            Err(e) => {
                // A failed statement aborted the transaction; dropping it rolls back.
                let _ = rt.block_on(tx.rollback());
                Ok(if transient {
                    Run::Again(e)
                } else {
                    Run::Done(Err(e))
                })
            }
        }
    }
}

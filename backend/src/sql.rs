//! One SQL surface over both stores (docs/adr/0014): the rules in `store/*`, `actions`,
//! `negotiate`, `visit` and `finish` are written once against [`Tx`], a transaction on either the
//! embedded SQLite (the writer thread's group transaction, or a reader's snapshot) or a PostgreSQL
//! server (a pooled connection's transaction, driven from a blocking thread).
//!
//! Statements are written once, in the subset both dialects share, with `?N` placeholders (turned
//! into `$N` for PostgreSQL); what PostgreSQL lacks is given to it by a migration (the
//! `json_group_array` aggregate), and the change number by [`Tx::next_change`]. Values cross as
//! [`Value`]: integers are 64-bit on both (every PostgreSQL integer column is `BIGINT`).

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use thiserror::Error;
use tokio_postgres::types::{IsNull, ToSql, Type};

/// A storage failure of one statement.
#[derive(Debug, Error)]
pub enum SqlError {
    /// SQLite refused.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL refused or the connection failed.
    #[error("postgres: {}", pg_detail(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// A single-row query found no row.
    #[error("no row")]
    NoRows,
    /// A stored value does not decode (written by something else than this backend).
    #[error("stored value does not decode: {0}")]
    Corrupt(String),
}

impl SqlError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            SqlError::Sqlite(_) => "sqlite",
            SqlError::Postgres(_) => "postgres",
            SqlError::NoRows => "no_row",
            SqlError::Corrupt(_) => "corrupt",
        }
    }

    /// Whether PostgreSQL aborted the transaction for a conflict that running it again resolves:
    /// a serialization failure (40001) or a deadlock (40P01).
    pub fn is_transient(&self) -> bool {
        matches!(self, SqlError::Postgres(e) if is_transient(e))
    }
}

/// A PostgreSQL error with the server's message and SQLSTATE (the driver's own text is only
/// "db error").
pub fn pg_detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// Whether PostgreSQL's error is a serialization failure (40001) or a deadlock (40P01).
pub fn is_transient(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
        || e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED)
}

/// `Result` of a statement.
pub type Result<T> = std::result::Result<T, SqlError>;

/// `.optional()` on a single-row query: no row is `None`, not an error.
pub trait OptionalExtension<T> {
    /// `Ok(None)` for [`SqlError::NoRows`].
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(SqlError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A transaction on one of the two stores.
pub enum Tx<'a> {
    /// SQLite: the writer's group transaction (inside a savepoint) or a reader's snapshot.
    Sqlite(&'a rusqlite::Connection),
    /// PostgreSQL.
    Postgres(&'a PgTx<'a>),
}

/// A PostgreSQL transaction driven from a blocking thread (each statement waits on the runtime).
pub struct PgTx<'a> {
    tx: &'a deadpool_postgres::Transaction<'a>,
    rt: tokio::runtime::Handle,
    /// The last change number this transaction took, announced at commit.
    head: Cell<Option<i64>>,
    /// Whether a statement failed for a conflict that running the transaction again resolves.
    transient: Cell<bool>,
    /// A write transaction (READ COMMITTED): rows it decides on are locked first
    /// ([`Tx::lock_once`]); a read-only one takes no locks.
    write: bool,
    /// The rows locked so far (statement, key), each locked once.
    locked: RefCell<HashSet<(&'static str, String)>>,
}

impl<'a> PgTx<'a> {
    /// Wraps `tx`; `rt` runs its statements (the caller is a blocking thread, never a worker).
    /// `write`: a write transaction, which locks the rows it decides on.
    pub fn new(
        tx: &'a deadpool_postgres::Transaction<'a>,
        rt: tokio::runtime::Handle,
        write: bool,
    ) -> Self {
        PgTx {
            tx,
            rt,
            head: Cell::new(None),
            transient: Cell::new(false),
            write,
            locked: RefCell::new(HashSet::new()),
        }
    }

    /// Whether a statement failed with a serialization failure or a deadlock.
    pub fn saw_transient(&self) -> bool {
        self.transient.get()
    }

    /// Notes a failed statement's error (transient ones make the runner try again).
    fn noted<T>(&self, r: std::result::Result<T, tokio_postgres::Error>) -> Result<T> {
        r.map_err(|e| {
            if is_transient(&e) {
                self.transient.set(true);
            }
            SqlError::Postgres(e)
        })
    }

    /// The last change number taken in this transaction, if any.
    pub fn head(&self) -> Option<i64> {
        self.head.get()
    }
}

impl Tx<'_> {
    /// Locks the row `lock` selects (`SELECT 1 FROM … WHERE … = ?1 FOR UPDATE`, `key` its one
    /// parameter) for the rest of a PostgreSQL write transaction, once per transaction and key.
    /// Writes run at READ COMMITTED: without the lock two transactions could decide on the same
    /// old row and both act (both complete a job — the second then fails on a unique key — or both
    /// pass a check that only one may pass). A later writer of the row waits here, and its next
    /// statement reads what the first committed. SQLite's single writer is serial already, and a
    /// read-only transaction decides nothing: for both, nothing to do.
    pub fn lock_once(&self, lock: &'static str, key: &str) -> Result<()> {
        let Tx::Postgres(p) = self else {
            return Ok(());
        };
        if !p.write || !p.locked.borrow_mut().insert((lock, key.to_owned())) {
            return Ok(());
        }
        p.query(lock, params![key])?;
        Ok(())
    }

    /// Executes a statement; the number of rows it changed.
    pub fn exec(&self, sql: &str, params: &[&dyn Param]) -> Result<usize> {
        match self {
            Tx::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                Ok(stmt.execute(rusqlite::params_from_iter(values(params)))?)
            }
            Tx::Postgres(p) => {
                let sql = placeholders(sql);
                let values = values(params);
                let refs = pg_refs(&values);
                let n = p.noted(p.rt.block_on(async {
                    let stmt = p.tx.prepare_cached(&sql).await?;
                    p.tx.execute(&stmt, &refs).await
                }))?;
                Ok(n as usize)
            }
        }
    }

    /// Runs a query expected to answer one row and decodes it ([`SqlError::NoRows`] for none).
    pub fn row<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        match self {
            Tx::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(values(params)))?;
                match rows.next()? {
                    Some(r) => f(&Row::Sqlite(r)),
                    None => Err(SqlError::NoRows),
                }
            }
            Tx::Postgres(p) => {
                let rows = p.query(sql, params)?;
                match rows.first() {
                    Some(r) => f(&Row::Postgres(r)),
                    None => Err(SqlError::NoRows),
                }
            }
        }
    }

    /// Runs a query and decodes every row.
    pub fn rows<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        match self {
            Tx::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(values(params)))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    out.push(f(&Row::Sqlite(r))?);
                }
                Ok(out)
            }
            Tx::Postgres(p) => p
                .query(sql, params)?
                .iter()
                .map(|r| f(&Row::Postgres(r)))
                .collect(),
        }
    }

    /// Takes the next number of the change log, in commit order on both stores: SQLite has one
    /// writer, so the `changes` rowid is; on PostgreSQL the number comes from the one-row
    /// `change_counter`, whose row lock this transaction then holds until it commits — numbers
    /// taken and not yet committed belong to one transaction and lie above every committed one.
    /// Inserts the `changes` row.
    pub fn next_change(&self, job_id: &str, at_ms: i64) -> Result<i64> {
        match self {
            Tx::Sqlite(c) => {
                c.prepare_cached("INSERT INTO changes (job_id, at) VALUES (?1, ?2)")?
                    .execute(rusqlite::params![job_id, at_ms])?;
                Ok(c.last_insert_rowid())
            }
            Tx::Postgres(p) => {
                let seq: i64 = self.row(
                    "UPDATE change_counter SET seq = seq + 1 WHERE id = 1 RETURNING seq",
                    &[],
                    |r| r.get(0),
                )?;
                self.exec(
                    "INSERT INTO changes (seq, job_id, at) VALUES (?1, ?2, ?3)",
                    params![seq, job_id, at_ms],
                )?;
                p.head.set(Some(seq));
                Ok(seq)
            }
        }
    }
}

impl PgTx<'_> {
    fn query(&self, sql: &str, params: &[&dyn Param]) -> Result<Vec<tokio_postgres::Row>> {
        let sql = placeholders(sql);
        let values = values(params);
        let refs = pg_refs(&values);
        self.noted(self.rt.block_on(async {
            let stmt = self.tx.prepare_cached(&sql).await?;
            self.tx.query(&stmt, &refs).await
        }))
    }
}

fn values<'p>(params: &'p [&dyn Param]) -> Vec<Value<'p>> {
    params.iter().map(|p| p.value()).collect()
}

fn pg_refs<'v>(values: &'v [Value<'_>]) -> Vec<&'v (dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

/// `?N` → `$N` (no statement here has a `?` anywhere else).
fn placeholders(sql: &str) -> String {
    sql.replace('?', "$")
}

/// An `IN (…)` list of `values` bound from parameter `first` on: the placeholders and the values.
///
/// The list is padded to the next power of two by repeating its last value (which changes nothing
/// in an `IN`), so the statement's text takes one of a few shapes: a pooled PostgreSQL connection
/// keeps every statement it prepared for its life, and would otherwise keep one per list length.
/// No values: `NULL`, which matches nothing.
pub fn in_list<P: Param>(first: usize, values: &[P]) -> (String, Vec<&dyn Param>) {
    let Some(last) = values.last() else {
        return ("NULL".to_owned(), Vec::new());
    };
    let n = values.len().next_power_of_two();
    let mut bound: Vec<&dyn Param> = values.iter().map(|v| v as &dyn Param).collect();
    bound.resize(n, last);
    let list = (first..first + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    (list, bound)
}

/// Builds a statement's parameter list: `params![a, b]`.
#[macro_export]
macro_rules! sql_params {
    () => { &[] as &[&dyn $crate::sql::Param] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::sql::Param),+] as &[&dyn $crate::sql::Param] };
}
pub use crate::sql_params as params;

/// A value bound to a statement or read from a row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// NULL.
    Null,
    /// A 64-bit integer (booleans are 0 and 1).
    Int(i64),
    /// A double.
    Real(f64),
    /// Text.
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
}

/// Something that binds to a statement parameter.
pub trait Param {
    /// The value to bind.
    fn value(&self) -> Value<'_>;
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl Param for $t {
            fn value(&self) -> Value<'_> {
                Value::Int(*self as i64)
            }
        }
    )*};
}
int_param!(i64, i32, u32, u16, u8, usize, bool);

impl Param for u64 {
    fn value(&self) -> Value<'_> {
        // Versions and counters: far below i64::MAX; saturate rather than wrap.
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl Param for f64 {
    fn value(&self) -> Value<'_> {
        Value::Real(*self)
    }
}

impl Param for str {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl Param for String {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl Param for [u8] {
    fn value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl Param for Vec<u8> {
    fn value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl<const N: usize> Param for [u8; N] {
    fn value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl<T: Param + ?Sized> Param for &T {
    fn value(&self) -> Value<'_> {
        (**self).value()
    }
}

impl<T: Param> Param for Option<T> {
    fn value(&self) -> Value<'_> {
        self.as_ref().map_or(Value::Null, Param::value)
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Null => ValueRef::Null,
            Value::Int(v) => ValueRef::Integer(v),
            Value::Real(v) => ValueRef::Real(v),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// PostgreSQL infers each parameter's type from the statement; an integer bound where it inferred
/// a narrower integer, a boolean or a double converts (checked), as SQLite would take it.
impl ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
                Type::BOOL => (v != 0).to_sql(ty, out),
                Type::FLOAT8 => (v as f64).to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Value::Real(v) => v.to_sql(ty, out),
            Value::Text(s) => s.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// One row of a query's answer.
pub enum Row<'a> {
    /// From SQLite.
    Sqlite(&'a rusqlite::Row<'a>),
    /// From PostgreSQL.
    Postgres(&'a tokio_postgres::Row),
}

impl Row<'_> {
    /// Column `idx` (0-based), decoded.
    pub fn get<T: FromColumn>(&self, idx: usize) -> Result<T> {
        let decoded = match self {
            Row::Sqlite(r) => T::from_column(sqlite_value(r.get_ref(idx)?)?),
            Row::Postgres(r) => T::from_column(pg_value(r, idx)?.as_ref()),
        };
        decoded.map_err(|what| SqlError::Corrupt(format!("column {idx}: {what}")))
    }
}

/// A PostgreSQL column's value (the driver hands it over decoded and owned).
enum Owned {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Owned {
    fn as_ref(&self) -> Value<'_> {
        match self {
            Owned::Null => Value::Null,
            Owned::Int(v) => Value::Int(*v),
            Owned::Real(v) => Value::Real(*v),
            Owned::Text(s) => Value::Text(s),
            Owned::Blob(b) => Value::Blob(b),
        }
    }
}

fn sqlite_value(v: rusqlite::types::ValueRef<'_>) -> Result<Value<'_>> {
    use rusqlite::types::ValueRef;
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(
            std::str::from_utf8(t).map_err(|e| SqlError::Corrupt(format!("text: {e}")))?,
        ),
        ValueRef::Blob(b) => Value::Blob(b),
    })
}

fn pg_value(row: &tokio_postgres::Row, idx: usize) -> Result<Owned> {
    let ty = row
        .columns()
        .get(idx)
        .map(|c| c.type_().clone())
        .ok_or_else(|| SqlError::Corrupt(format!("no column {idx}")))?;
    let cell = match ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(idx)?.map(Owned::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(idx)?
            .map(|v| Owned::Int(v.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(idx)?
            .map(|v| Owned::Int(v.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(idx)?
            .map(|v| Owned::Int(v.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(idx)?.map(Owned::Real),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(idx)?
            .map(|v| Owned::Real(v.into())),
        Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(idx)?.map(Owned::Blob),
        _ => row.try_get::<_, Option<String>>(idx)?.map(Owned::Text),
    };
    Ok(cell.unwrap_or(Owned::Null))
}

/// Something a column decodes into.
pub trait FromColumn: Sized {
    /// Decodes `v`, or says why not.
    fn from_column(v: Value<'_>) -> std::result::Result<Self, String>;
}

macro_rules! int_column {
    ($($t:ty),*) => {$(
        impl FromColumn for $t {
            fn from_column(v: Value<'_>) -> std::result::Result<Self, String> {
                match v {
                    Value::Int(i) => <$t>::try_from(i).map_err(|_| format!("{i} is out of range")),
                    other => Err(format!("expected an integer, found {other:?}")),
                }
            }
        }
    )*};
}
int_column!(i64, i32, u64, u32, u16, u8, usize);

impl FromColumn for bool {
    fn from_column(v: Value<'_>) -> std::result::Result<Self, String> {
        i64::from_column(v).map(|i| i != 0)
    }
}

impl FromColumn for f64 {
    fn from_column(v: Value<'_>) -> std::result::Result<Self, String> {
        match v {
            Value::Real(f) => Ok(f),
            Value::Int(i) => Ok(i as f64),
            other => Err(format!("expected a number, found {other:?}")),
        }
    }
}

impl FromColumn for String {
    fn from_column(v: Value<'_>) -> std::result::Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.to_owned()),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}

impl FromColumn for Vec<u8> {
    fn from_column(v: Value<'_>) -> std::result::Result<Self, String> {
        match v {
            Value::Blob(b) => Ok(b.to_vec()),
            other => Err(format!("expected bytes, found {other:?}")),
        }
    }
}

impl<T: FromColumn> FromColumn for Option<T> {
    fn from_column(v: Value<'_>) -> std::result::Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            v => T::from_column(v).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_lists_take_a_few_shapes() {
        let (list, bound) = in_list(3, &[7_i64, 8, 9]);
        assert_eq!(list, "?3, ?4, ?5, ?6");
        let values: Vec<Value<'_>> = bound.iter().map(|p| p.value()).collect();
        assert_eq!(
            values,
            [Value::Int(7), Value::Int(8), Value::Int(9), Value::Int(9)]
        );
        assert_eq!(in_list(1, &[1_i64; 4]).0, "?1, ?2, ?3, ?4");
        assert_eq!(in_list::<i64>(1, &[]).0, "NULL");
    }

    #[test]
    fn placeholders_become_dollars() {
        assert_eq!(
            placeholders("SELECT a FROM t WHERE b = ?1 AND c > ?12"),
            "SELECT a FROM t WHERE b = $1 AND c > $12"
        );
    }

    #[test]
    fn one_surface_over_sqlite() {
        let c = rusqlite::Connection::open_in_memory().expect("memory db");
        let tx = Tx::Sqlite(&c);
        tx.exec(
            "CREATE TABLE t (a INTEGER, b TEXT, c BLOB, d REAL)",
            params![],
        )
        .expect("create");
        let blob: &[u8] = b"xy";
        let none: Option<String> = None;
        tx.exec(
            "INSERT INTO t VALUES (?1, ?2, ?3, ?4)",
            params![7u32, "seven", blob, 0.5],
        )
        .expect("insert");
        tx.exec(
            "INSERT INTO t VALUES (?1, ?2, NULL, NULL)",
            params![8i64, none],
        )
        .expect("insert null");
        type Decoded = (u32, Option<String>, Option<Vec<u8>>, Option<f64>);
        let rows: Vec<Decoded> = tx
            .rows("SELECT a, b, c, d FROM t ORDER BY a", params![], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .expect("rows");
        assert_eq!(
            rows,
            vec![
                (7, Some("seven".into()), Some(b"xy".to_vec()), Some(0.5)),
                (8, None, None, None)
            ]
        );
        let missing = tx
            .row("SELECT a FROM t WHERE a = ?1", params![9], |r| {
                r.get::<i64>(0)
            })
            .optional()
            .expect("query");
        assert_eq!(missing, None);
        let bad = tx.row("SELECT b FROM t WHERE a = 7", params![], |r| {
            r.get::<i64>(0)
        });
        assert!(matches!(bad, Err(SqlError::Corrupt(_))), "{bad:?}");
    }
}

//! The service catalog.

use crate::sql::{OptionalExtension, Row, Tx, params};
use friend_protocol::{Catalog, Category, Currency, Money, Service, Tier};

fn service_from_row(r: &Row<'_>) -> crate::sql::Result<Service> {
    let category: String = r.get(1)?;
    let currency: String = r.get(5)?;
    let tier: String = r.get(7)?;
    Ok(Service {
        id: r.get(0)?,
        category: Category::parse(&category),
        title: r.get(2)?,
        description: r.get(3)?,
        orientation_price: Money::new(
            r.get(4)?,
            if currency == "EUR" {
                Currency::Eur
            } else if currency == "CHF" {
                Currency::Chf
            } else {
                Currency::Unknown
            },
        ),
        duration_minutes: r.get(6)?,
        min_tier: Tier::parse(&tier),
    })
}

const COLUMNS: &str =
    "id, category, title, description, price_minor, currency, duration_minutes, min_tier";

/// One service.
pub fn service(tx: &Tx<'_>, id: &str) -> crate::sql::Result<Option<Service>> {
    tx.row(
        &format!("SELECT {COLUMNS} FROM services WHERE id = ?1"),
        params![id],
        service_from_row,
    )
    .optional()
}

/// The whole catalog.
pub fn catalog(tx: &Tx<'_>) -> crate::sql::Result<Catalog> {
    let services = tx.rows(
        &format!("SELECT {COLUMNS} FROM services ORDER BY position"),
        params![],
        service_from_row,
    )?;
    let version: Option<String> = tx
        .row(
            "SELECT value FROM meta WHERE key = 'catalog_version'",
            params![],
            |r| r.get(0),
        )
        .optional()?;
    Ok(Catalog {
        version: version.and_then(|v| v.parse().ok()).unwrap_or(0),
        services,
        compensation: friend_protocol::CompensationPolicy::default(),
    })
}

/// Replaces the catalog and bumps its version.
pub fn replace(tx: &Tx<'_>, services: &[Service]) -> crate::sql::Result<()> {
    tx.exec("DELETE FROM services", params![])?;
    for (i, s) in services.iter().enumerate() {
        tx.exec(
            &format!("INSERT INTO services ({COLUMNS}, position) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
            params![
                s.id,
                s.category.as_str(),
                s.title,
                s.description,
                s.orientation_price.minor,
                s.orientation_price.currency.code(),
                s.duration_minutes,
                s.min_tier.as_str(),
                i as i64
            ],
        )?;
    }
    tx.exec(
        "INSERT INTO meta (key, value) VALUES ('catalog_version', '1')
         ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT)",
        params![],
    )?;
    Ok(())
}

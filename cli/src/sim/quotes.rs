//! The line items simulated Friends and customers put into quotes: the service at its orientation
//! price plus what is found on site, a customer's discount counter, the compromise, amendments.

use super::model::QuotePlan;
use friend_protocol::quote::{LineItem, LineItemKind};
use friend_protocol::{Money, Service};

fn item(kind: LineItemKind, text: &str, quantity: u32, minor: i64) -> LineItem {
    LineItem {
        kind,
        description: text.into(),
        quantity,
        unit_price: Money::chf(minor),
    }
}

/// Sum of the items in Rappen.
pub fn total(items: &[LineItem]) -> i64 {
    items
        .iter()
        .map(|i| i.unit_price.minor * i64::from(i.quantity))
        .sum()
}

/// A reason when the total lies above the orientation price (needed beyond 20 % above it).
pub fn reason_for(items: &[LineItem], service: &Service) -> Option<String> {
    (total(items) > service.orientation_price.minor)
        .then(|| "Extra material and time agreed on site".to_owned())
}

/// Just the service at its orientation price.
pub fn bare(service: &Service) -> Vec<LineItem> {
    vec![item(
        LineItemKind::Service,
        &service.title,
        1,
        service.orientation_price.minor,
    )]
}

/// The Friend's first quote.
pub fn first(service: &Service, plan: &QuotePlan) -> Vec<LineItem> {
    let mut items = bare(service);
    if let Some(m) = plan.material {
        items.push(item(LineItemKind::Material, "Cables and adapters", 1, m));
    }
    if let Some(n) = plan.time_units {
        items.push(item(LineItemKind::TimeUnit, "Extra 30 minutes", n, 3000));
    }
    if let Some(d) = plan.discount {
        items.push(item(LineItemKind::Discount, "Regular customer", 1, -d));
    }
    items
}

/// `items` with a discount of `percent` % of their total, rounded to whole francs.
pub fn discounted(items: &[LineItem], percent: u8, text: &str) -> Vec<LineItem> {
    let sum = total(items).max(0);
    let cut = (sum * i64::from(percent) / 100 / 100 * 100).clamp(100, sum.max(100));
    let mut out = items.to_vec();
    out.push(item(LineItemKind::Discount, text, 1, -cut));
    out
}

/// The agreed items plus a further service found on site.
pub fn amended(agreed: &[LineItem]) -> (Vec<LineItem>, String) {
    let mut out = agreed.to_vec();
    out.push(item(
        LineItemKind::ExtraService,
        "Mesh repeater for the second floor",
        1,
        4900,
    ));
    (
        out,
        "More work found on site: no signal on the second floor".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use friend_protocol::quote::{Quote, validate_quote};
    use friend_protocol::{JobId, QuotePolicy};

    #[test]
    fn every_simulated_quote_passes_the_shared_rules() {
        let catalog = friend_backend::seed::default_catalog();
        let plan = QuotePlan {
            material: Some(4000),
            time_units: Some(2),
            discount: Some(1000),
        };
        for service in &catalog {
            let price = service.orientation_price;
            let first = first(service, &plan);
            let variants = [
                (first.clone(), reason_for(&first, service)),
                {
                    let items = discounted(&first, 15, "Counter");
                    let reason = reason_for(&items, service);
                    (items, reason)
                },
                (bare(service), None),
                {
                    let (items, reason) = amended(&first);
                    (items, Some(reason))
                },
            ];
            for (items, reason) in variants {
                let q = Quote::new(JobId::random(), 1, items, reason).unwrap();
                validate_quote(&q, price.currency, price, &QuotePolicy::default())
                    .unwrap_or_else(|e| panic!("{}: {e}", service.id));
            }
        }
    }
}

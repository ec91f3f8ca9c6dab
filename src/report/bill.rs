//! `berth fleet bill`: the month's bill from what `fleet summary` counts, with
//! volume pricing: the month's quantity for a vessel type selects one tier,
//! and every unit of that month is priced at it. Money is `Decimal` from the
//! price file's text to the total: no binary floating point in any sum.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use super::fleet::{Cell, FleetSummary, Problem};

/// `fleet bill`: reads the prices first (a broken price file stops before
/// any report is verified), then counts what `inputs` hold and prices it (of
/// `month` only, when given).
pub fn run(
    prices: &Path,
    inputs: &super::SummaryArgs,
    month: Option<crate::ids::Month>,
) -> anyhow::Result<Bill> {
    let prices = Prices::load(prices)?;
    let summary = super::summarize_paths(inputs)?;
    bill(&summary, &prices, month.map(|m| m.to_string()).as_deref())
}

/// What is counted and priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Installations with at least one license in the month.
    Installations,
    Licenses,
    ActiveUsers,
}

impl Basis {
    fn quantity(self, cell: &Cell) -> u64 {
        match self {
            Basis::Installations => cell.active_installations,
            Basis::Licenses => cell.licenses,
            Basis::ActiveUsers => cell.active_users,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Basis::Installations => "installations",
            Basis::Licenses => "licenses",
            Basis::ActiveUsers => "active_users",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// The largest quantity this tier covers; none for the last, open tier.
    pub up_to: Option<u64>,
    /// A number (`250.0`) or, to be sure of the digits, a string (`"249.99"`).
    pub unit_price: Decimal,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VesselPrices {
    pub tiers: Vec<Tier>,
}

/// A price file (TOML).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    pub currency: String,
    pub basis: Basis,
    pub vessel_types: BTreeMap<String, VesselPrices>,
}

impl Prices {
    /// Reads and checks a price file: a currency code, tiers in rising order
    /// with only the last one open, no negative price.
    pub fn load(path: &Path) -> anyhow::Result<Prices> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading the price file {}: {e}", path.display()))?;
        let prices: Prices =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("the price file {}: {e}", path.display()))?;
        prices
            .check()
            .map_err(|e| anyhow::anyhow!("the price file {}: {e}", path.display()))?;
        Ok(prices)
    }

    fn check(&self) -> Result<(), PriceProblem> {
        if self.currency.len() != 3 || !self.currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(PriceProblem::Currency(self.currency.clone()));
        }
        for (vessel_type, prices) in &self.vessel_types {
            let at = |tier: usize| (vessel_type.clone(), tier + 1);
            let tiers = &prices.tiers;
            let Some((last, bounded)) = tiers.split_last() else {
                return Err(PriceProblem::NoTiers(vessel_type.clone()));
            };
            if last.up_to.is_some() {
                return Err(PriceProblem::LastTierBounded(vessel_type.clone()));
            }
            let mut floor = None;
            for (n, tier) in bounded.iter().enumerate() {
                let Some(up_to) = tier.up_to else {
                    return Err(PriceProblem::OpenTier(at(n)));
                };
                if floor.is_some_and(|f| up_to <= f) {
                    return Err(PriceProblem::NotAscending(at(n), up_to));
                }
                floor = Some(up_to);
            }
            if let Some(n) = tiers.iter().position(|t| t.unit_price.is_sign_negative()) {
                return Err(PriceProblem::NegativePrice(at(n)));
            }
        }
        Ok(())
    }
}

/// Why a price file cannot bill; a tier is named by its vessel type and
/// its number, from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceProblem {
    #[error("currency {0:?} is not a three-letter code like EUR")]
    Currency(String),
    #[error("vessel_types.{0} has no tiers")]
    NoTiers(String),
    #[error("vessel_types.{0}: the last tier must have no up_to (it covers every quantity above the others)")]
    LastTierBounded(String),
    #[error("vessel_types.{}: tier {} has no up_to, but only the last tier may be open", .0.0, .0.1)]
    OpenTier((String, usize)),
    #[error("vessel_types.{}: tier {} ends at {}, not above the tier before", .0.0, .0.1, .1)]
    NotAscending((String, usize), u64),
    #[error("vessel_types.{}: tier {} has a negative price", .0.0, .0.1)]
    NegativePrice((String, usize)),
}

/// One vessel type's charge in one month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    pub vessel_type: String,
    pub basis: &'static str,
    pub quantity: u64,
    /// 1 for the first tier.
    pub tier: usize,
    #[serde(serialize_with = "price")]
    pub unit_price: Decimal,
    #[serde(serialize_with = "money")]
    pub amount: Decimal,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MonthBill {
    pub lines: Vec<Line>,
    #[serde(serialize_with = "money")]
    pub total: Decimal,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bill {
    pub currency: String,
    pub months: BTreeMap<String, MonthBill>,
    /// Reports that are not billed, and why (invalid, partial, forked, unlinked).
    pub not_billed: Vec<Problem>,
}

/// Amounts as strings with two places: JSON numbers would be read back as
/// binary floating point.
fn money<S: serde::Serializer>(amount: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&two_places(*amount))
}

fn two_places(amount: Decimal) -> String {
    format!(
        "{:.2}",
        amount.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
    )
}

/// The tier (1-based) a quantity falls into and its price.
fn tier_for(tiers: &[Tier], quantity: u64) -> (usize, Decimal) {
    let n = tiers
        .iter()
        .position(|t| t.up_to.is_none_or(|up_to| quantity <= up_to))
        .expect("the last tier is open (checked when the file was read)");
    (n + 1, tiers[n].unit_price)
}

/// Bills the counted reports of `summary` (of `month` only, when given). A
/// vessel type with no price is not billed, and each installation of that
/// type is named among what is not billed; an amount too large to compute
/// exactly is an error naming it.
pub fn bill(summary: &FleetSummary, prices: &Prices, month: Option<&str>) -> anyhow::Result<Bill> {
    let mut months = BTreeMap::new();
    let mut not_billed = summary.problems.clone();
    let mut unpriced = std::collections::BTreeSet::new();
    for (m, types) in &summary.months {
        if month.is_some_and(|wanted| wanted != m) {
            continue;
        }
        let mut bill = MonthBill::default();
        for (vessel_type, cell) in types {
            let Some(priced) = prices.vessel_types.get(vessel_type) else {
                unpriced.insert(vessel_type.clone());
                continue;
            };
            let quantity = prices.basis.quantity(cell);
            let (tier, unit_price) = tier_for(&priced.tiers, quantity);
            let amount = Decimal::from(quantity)
                .checked_mul(unit_price)
                .map(|a| a.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{m}: {vessel_type}: {quantity} × {unit_price} is too large to compute exactly; check the price file"
                    )
                })?;
            bill.total = bill
                .total
                .checked_add(amount)
                .ok_or_else(|| anyhow::anyhow!("{m}: the month's total is too large to compute exactly"))?;
            bill.lines.push(Line {
                vessel_type: vessel_type.clone(),
                basis: prices.basis.name(),
                quantity,
                tier,
                unit_price,
                amount,
            });
        }
        months.insert(m.clone(), bill);
    }
    for (installation, vessel_type) in &summary.installations {
        if unpriced.contains(vessel_type) {
            not_billed.push(Problem {
                file: "(prices)".into(),
                installation: Some(installation.clone()),
                problem: format!(
                    "vessel type {vessel_type:?} has no price in the price file (add [vessel_types.{vessel_type}]); not billed"
                ),
            });
        }
    }
    Ok(Bill {
        currency: prices.currency.clone(),
        months,
        not_billed,
    })
}

/// A unit price as it was given: at least two places, more when it has them
/// (0.005 stays 0.005 beside amounts computed from it).
fn price_text(price: Decimal) -> String {
    if price.normalize().scale() <= 2 {
        two_places(price)
    } else {
        price.normalize().to_string()
    }
}

/// Unit prices as strings with the places they were given.
fn price<S: serde::Serializer>(amount: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&price_text(*amount))
}

impl Bill {
    /// The bill as CSV for a billing system; then what is not billed, one a
    /// row in the last column.
    pub fn csv(&self) -> String {
        use super::text::{csv_problems, csv_record};
        let mut out =
            String::from("month,vessel_type,basis,quantity,tier,unit_price,amount,currency,problem\n");
        for (month, bill) in &self.months {
            for l in &bill.lines {
                out.push_str(&csv_record(&[
                    month,
                    &l.vessel_type,
                    l.basis,
                    &l.quantity.to_string(),
                    &l.tier.to_string(),
                    &price_text(l.unit_price),
                    &two_places(l.amount),
                    &self.currency,
                    "",
                ]));
            }
            out.push_str(&csv_record(&[
                month,
                "total",
                "",
                "",
                "",
                "",
                &two_places(bill.total),
                &self.currency,
                "",
            ]));
        }
        out.push_str(&csv_problems(&self.not_billed, 9));
        out
    }
}

impl fmt::Display for Bill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.months.is_empty() {
            writeln!(f, "nothing to bill: no counted reports for the month asked")?;
        }
        for (month, bill) in &self.months {
            writeln!(f, "{month}")?;
            writeln!(
                f,
                "  {:<16} {:<14} {:>10} {:>5} {:>14} {:>16}",
                "vessel type", "basis", "quantity", "tier", "unit price", "amount"
            )?;
            for l in &bill.lines {
                writeln!(
                    f,
                    "  {:<16} {:<14} {:>10} {:>5} {:>14} {:>16}",
                    l.vessel_type,
                    l.basis,
                    l.quantity,
                    l.tier,
                    price_text(l.unit_price),
                    two_places(l.amount)
                )?;
            }
            writeln!(
                f,
                "  {:<63} {:>16} {}",
                "total",
                two_places(bill.total),
                self.currency
            )?;
        }
        for p in &self.not_billed {
            writeln!(f, "not billed: {}", super::text::problem(p))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prices(text: &str) -> Result<Prices, String> {
        let prices: Prices = toml::from_str(text).map_err(|e| e.to_string())?;
        prices.check().map(|()| prices).map_err(|e| e.to_string())
    }

    #[test]
    fn price_files_that_cannot_bill_are_refused() {
        let ok = "currency = \"EUR\"\nbasis = \"licenses\"\n[vessel_types.bus]\ntiers = [{ up_to = 5, unit_price = 1 }, { unit_price = \"0.5\" }]\n";
        assert!(prices(ok).is_ok());
        for (text, says) in [
            (ok.replace("EUR", "euro"), "three-letter"),
            (ok.replace("licenses", "seats"), "unknown variant"),
            (
                ok.replace("{ unit_price = \"0.5\" }", "{ up_to = 9, unit_price = 1 }"),
                "last tier",
            ),
            (
                ok.replace("{ up_to = 5, unit_price = 1 }, ", "{ unit_price = 1 }, "),
                "only the last",
            ),
            (
                ok.replace(
                    "up_to = 5, unit_price = 1 }, {",
                    "up_to = 5, unit_price = 1 }, { up_to = 5, unit_price = 1 }, {",
                ),
                "not above",
            ),
            (ok.replace("\"0.5\"", "-1"), "negative"),
            (ok.replace("tiers = ", "tierz = "), "unknown field"),
            (
                ok.replace("[{ up_to = 5, unit_price = 1 }, { unit_price = \"0.5\" }]", "[]"),
                "no tiers",
            ),
        ] {
            let err = prices(&text).expect_err(&text);
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn a_quantity_at_a_boundary_is_in_the_lower_tier() {
        let tiers = prices("currency = \"EUR\"\nbasis = \"licenses\"\n[vessel_types.bus]\ntiers = [{ up_to = 10, unit_price = 3 }, { up_to = 100, unit_price = 2 }, { unit_price = 1 }]\n")
            .unwrap()
            .vessel_types["bus"]
            .tiers
            .clone();
        let tier = |q| tier_for(&tiers, q).0;
        assert_eq!(
            [tier(0), tier(10), tier(11), tier(100), tier(101)],
            [1, 1, 2, 2, 3]
        );
    }

    #[test]
    fn amounts_are_exact_decimals() {
        // 0.1 + 0.2 in binary floating point is 0.30000000000000004.
        let p = prices("currency = \"EUR\"\nbasis = \"licenses\"\n[vessel_types.bus]\ntiers = [{ unit_price = 0.1 }]\n[vessel_types.train]\ntiers = [{ unit_price = 0.2 }]\n").unwrap();
        let cell = |licenses| Cell {
            licenses,
            ..Cell::default()
        };
        let summary = FleetSummary {
            months: BTreeMap::from([(
                "2026-10".to_owned(),
                BTreeMap::from([("bus".to_owned(), cell(1)), ("train".to_owned(), cell(1))]),
            )]),
            ..FleetSummary::default()
        };
        let bill = bill(&summary, &p, None).unwrap();
        assert_eq!(two_places(bill.months["2026-10"].total), "0.30");
        assert_eq!(bill.months["2026-10"].total.to_string(), "0.3");
    }
}

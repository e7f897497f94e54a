//! What a barcode scanner's labels mean for the manifest, as pure
//! decisions: a label or a zone, the item a label names, and what scanning
//! a zone after a pallet does (load, move, nothing). `coldgate scan` reads
//! the scanner and talks to the daemon around these.

use super::{gs1, Item};

/// A pallet being scanned: its SSCC and the items scanned so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub sscc: String,
    pub items: Vec<Item>,
}

/// The open stay of a pallet, as the daemon reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct OnBoard {
    pub zone: String,
    pub items: Vec<Item>,
}

/// What scanning a zone after a pallet does.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// A pallet not on board: load it with these items.
    Load(Vec<Item>),
    /// On board elsewhere: end that stay, start one here. The items are
    /// those scanned now, or the stay's own when only the SSCC was scanned.
    Move { from: String, items: Vec<Item> },
    /// Already on board in this zone: nothing to send.
    AlreadyThere,
    /// Not on board and no item known: the daemon would refuse it.
    NoItem,
}

pub fn plan(pending: &Pending, zone: &str, on_board: Option<&OnBoard>) -> Plan {
    match on_board {
        Some(stay) if stay.zone == zone => Plan::AlreadyThere,
        Some(stay) => Plan::Move {
            from: stay.zone.clone(),
            items: if pending.items.is_empty() {
                stay.items.clone()
            } else {
                pending.items.clone()
            },
        },
        None if pending.items.is_empty() => Plan::NoItem,
        None => Plan::Load(pending.items.clone()),
    }
}

/// Whether a scanned line is meant as a GS1 label (rather than a zone).
pub fn looks_like_gs1(line: &str) -> bool {
    line.starts_with('(')
        || line.starts_with(']')
        || line.starts_with("http://")
        || line.starts_with("https://")
        || line.contains(gs1::GS)
        || (line.len() >= 16 && line.bytes().all(|b| b.is_ascii_digit()))
}

/// The item a label names: a product label's GTIN (01), or on a pallet
/// label the GTIN of its contents (02); with the lot (10) either way.
pub fn add_item(items: &mut Vec<Item>, d: &gs1::Gs1Data) {
    let (Some(gtin), Some(lot)) = (d.gtin.as_ref().or(d.content_gtin.as_ref()), &d.lot) else {
        return;
    };
    let expiry = d.expiry.map(|e| e.to_string());
    match items.iter_mut().find(|i| &i.gtin == gtin && &i.lot == lot) {
        Some(i) => {
            if let Some(serial) = &d.serial {
                if !i.serials.contains(serial) {
                    i.serials.push(serial.clone());
                }
            }
        }
        None => items.push(Item {
            gtin: gtin.clone(),
            lot: lot.clone(),
            expiry,
            serials: d.serial.iter().cloned().collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(lot: &str) -> Item {
        Item {
            gtin: "09520123456788".into(),
            lot: lot.into(),
            expiry: Some("2027-12-31".into()),
            serials: vec![],
        }
    }

    fn pending(items: Vec<Item>) -> Pending {
        Pending {
            sscc: "106141412345678908".into(),
            items,
        }
    }

    #[test]
    fn labels_and_zones_are_told_apart() {
        assert!(looks_like_gs1("(00)106141412345678908"));
        assert!(looks_like_gs1("00106141412345678908"));
        assert!(looks_like_gs1("https://id.gs1.org/00/106141412345678908"));
        assert!(!looks_like_gs1("rear"));
        assert!(!looks_like_gs1("zone-2"));
    }

    #[test]
    fn a_pallet_label_with_content_gtin_and_lot_gives_the_item_in_all_three_forms() {
        for label in [
            "(00)106141412345678908(02)09520123456788(37)40(10)ABC123(17)271231",
            "001061414123456789080209520123456788\u{1d}3740\u{1d}10ABC123\u{1d}17271231",
            "https://id.example.com/00/106141412345678908?02=09520123456788&37=40&10=ABC123&17=271231",
        ] {
            let d = gs1::parse(label).unwrap();
            let mut items = Vec::new();
            add_item(&mut items, &d);
            assert_eq!(items, vec![item("ABC123")], "{label:?}");
        }
    }

    #[test]
    fn a_pallet_not_on_board_is_loaded_and_needs_an_item() {
        assert_eq!(
            plan(&pending(vec![item("A")]), "rear", None),
            Plan::Load(vec![item("A")])
        );
        assert_eq!(plan(&pending(vec![]), "rear", None), Plan::NoItem);
    }

    #[test]
    fn a_pallet_on_board_elsewhere_is_moved_with_its_items() {
        let stay = OnBoard {
            zone: "front".into(),
            items: vec![item("ON-BOARD")],
        };
        assert_eq!(
            plan(&pending(vec![]), "rear", Some(&stay)),
            Plan::Move {
                from: "front".into(),
                items: vec![item("ON-BOARD")]
            }
        );
        assert_eq!(
            plan(&pending(vec![item("NEW")]), "rear", Some(&stay)),
            Plan::Move {
                from: "front".into(),
                items: vec![item("NEW")]
            }
        );
        assert_eq!(
            plan(&pending(vec![]), "front", Some(&stay)),
            Plan::AlreadyThere
        );
    }
}

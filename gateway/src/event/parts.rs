//! Payloads bounded by `mqtt.max_payload`: splitting a list of pallets into
//! parts, and bounding echoes of outside input.
//!
//! Only lists of pallets grow without bound: an excursion's `affected` and
//! the manifest's `pallets` carry every serial of every item. A payload over
//! the limit is cut at pallet, item and serial boundaries into parts that
//! repeat every other field and add `part` (from 1) and `parts`. A pallet
//! (same `sscc`) or an item (same `gtin`, `lot`, `expiry`) may continue in
//! the next part; [`merge`] shows how a subscriber puts them back together
//! (docs/mqtt.md, "Large events"). A payload that fits is sent unchanged,
//! without `part` fields, so small events look as they always did.
//!
//! Everything else in a payload is small by construction, except what echoes
//! input from outside (a refused command's SSCC, its list of problems):
//! [`bounded`] cuts that down before it is stored or published.

use serde_json::{Map, Value};

/// Longest string kept from outside input, in bytes. Every legitimate field
/// (an SSCC, a GTIN, a lot, an id, one problem's text) is far shorter.
pub const ECHO_MAX_BYTES: usize = 512;

/// Most elements kept of a list echoed from outside input (problems).
pub const ECHO_MAX_ITEMS: usize = 32;

/// Why a payload cannot be split to fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("{fixed} bytes besides its `{list}` list, over the limit of {max}")]
    FixedPartTooLarge {
        list: &'static str,
        fixed: usize,
        max: usize,
    },
    #[error("one element of its `{list}` list alone does not fit in {max} bytes")]
    ElementTooLarge { list: &'static str, max: usize },
    #[error("`{list}` is not a list")]
    NotAList { list: &'static str },
}

fn json_len(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(usize::MAX, |b| b.len())
}

/// Digits of the largest seq and part numbers, so a part measured with them
/// never grows when the real numbers are filled in.
const PLACEHOLDER: u64 = u64::MAX;

/// Splits `payload` so each part serialises to at most `max` bytes. Returns
/// the payload unchanged (one element, no `part` fields) when it fits.
/// `payload["seq"]`, if present, should hold the widest value it may take
/// (the caller renumbers the parts); it is measured as [`u64::MAX`].
pub fn split(
    payload: &Map<String, Value>,
    list: &'static str,
    max: usize,
) -> Result<Vec<Map<String, Value>>, SplitError> {
    if json_len(&Value::Object(payload.clone())) <= max {
        return Ok(vec![payload.clone()]);
    }
    let pallets = match payload.get(list) {
        Some(Value::Array(a)) => a.as_slice(),
        _ => return Err(SplitError::NotAList { list }),
    };
    let mut base = payload.clone();
    base.insert(list.into(), Value::Array(Vec::new()));
    base.insert("part".into(), Value::from(PLACEHOLDER));
    base.insert("parts".into(), Value::from(PLACEHOLDER));
    if base.contains_key("seq") {
        base.insert("seq".into(), Value::from(PLACEHOLDER));
    }
    let fixed = json_len(&Value::Object(base.clone()));
    // Room for the list's elements and the commas between them.
    let room = max
        .checked_sub(fixed)
        .filter(|r| *r > 0)
        .ok_or(SplitError::FixedPartTooLarge { list, fixed, max })?;

    let mut packer = Packer::new(room, list, max);
    for (index, pallet) in pallets.iter().enumerate() {
        packer.pallet(index, pallet)?;
    }
    let lists = packer.finish();
    let parts = lists.len();
    Ok(lists
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let mut m = payload.clone();
            m.insert(list.into(), Value::Array(l));
            m.insert("part".into(), Value::from(i + 1));
            m.insert("parts".into(), Value::from(parts));
            m
        })
        .collect())
}

/// Fills parts greedily, in order, with exact sizes: compact JSON of a list
/// is its elements' bytes plus one comma between each two.
struct Packer {
    room: usize,
    list: &'static str,
    max: usize,
    done: Vec<Vec<Value>>,
    current: Vec<Value>,
    used: usize,
    /// The index of the pallet last in `current`, to continue it.
    last: Option<usize>,
}

impl Packer {
    fn new(room: usize, list: &'static str, max: usize) -> Packer {
        Packer {
            room,
            list,
            max,
            done: Vec::new(),
            current: Vec::new(),
            used: 0,
            last: None,
        }
    }

    fn too_large(&self) -> SplitError {
        SplitError::ElementTooLarge {
            list: self.list,
            max: self.max,
        }
    }

    fn pallet(&mut self, index: usize, pallet: &Value) -> Result<(), SplitError> {
        let items = match pallet.get("items") {
            Some(Value::Array(items)) if !items.is_empty() => items,
            _ => return self.whole(pallet),
        };
        let mut shell = pallet.clone();
        shell["items"] = Value::Array(Vec::new());
        let shell_len = json_len(&shell);
        // Room for one item in a part of its own.
        let item_room = self
            .room
            .checked_sub(shell_len)
            .filter(|r| *r > 0)
            .ok_or_else(|| self.too_large())?;
        for item in items {
            if json_len(item) <= item_room {
                self.item(index, &shell, shell_len, item.clone())?;
                continue;
            }
            for piece in split_serials(item, item_room).ok_or_else(|| self.too_large())? {
                self.item(index, &shell, shell_len, piece)?;
            }
        }
        Ok(())
    }

    /// A pallet without items to cut: it goes whole.
    fn whole(&mut self, pallet: &Value) -> Result<(), SplitError> {
        let len = json_len(pallet);
        if len > self.room {
            return Err(self.too_large());
        }
        let comma = usize::from(!self.current.is_empty());
        if self.used + comma + len > self.room {
            self.flush();
        }
        self.used += usize::from(!self.current.is_empty()) + len;
        self.current.push(pallet.clone());
        self.last = None;
        Ok(())
    }

    fn item(
        &mut self,
        index: usize,
        shell: &Value,
        shell_len: usize,
        item: Value,
    ) -> Result<(), SplitError> {
        let item_len = json_len(&item);
        let continues = self.last == Some(index);
        let cost = if continues {
            // A comma before it: the pallet here already has an item.
            item_len + 1
        } else {
            usize::from(!self.current.is_empty()) + shell_len + item_len
        };
        if self.used + cost <= self.room {
            self.used += cost;
            if continues {
                if let Some(Value::Array(items)) =
                    self.current.last_mut().and_then(|p| p.get_mut("items"))
                {
                    items.push(item);
                }
            } else {
                let mut p = shell.clone();
                p["items"] = Value::Array(vec![item]);
                self.current.push(p);
                self.last = Some(index);
            }
            return Ok(());
        }
        if self.current.is_empty() {
            return Err(self.too_large());
        }
        self.flush();
        self.item(index, shell, shell_len, item)
    }

    fn flush(&mut self) {
        if !self.current.is_empty() {
            self.done.push(std::mem::take(&mut self.current));
        }
        self.used = 0;
        self.last = None;
    }

    fn finish(mut self) -> Vec<Vec<Value>> {
        self.flush();
        if self.done.is_empty() {
            self.done.push(Vec::new());
        }
        self.done
    }
}

/// Cuts an item's `serials` into pieces (the item's other fields repeated)
/// that each take at most `room` bytes; none if one serial alone does not.
fn split_serials(item: &Value, room: usize) -> Option<Vec<Value>> {
    let serials = item.get("serials")?.as_array()?;
    let mut shell = item.clone();
    shell["serials"] = Value::Array(Vec::new());
    let shell_len = json_len(&shell);
    let mut pieces = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    let mut used = shell_len;
    for s in serials {
        let len = json_len(s);
        let cost = usize::from(!current.is_empty()) + len;
        if used + cost > room {
            if current.is_empty() {
                return None;
            }
            let mut piece = shell.clone();
            piece["serials"] = Value::Array(std::mem::take(&mut current));
            pieces.push(piece);
            used = shell_len;
        }
        used += usize::from(!current.is_empty()) + len;
        if used > room {
            return None;
        }
        current.push(s.clone());
    }
    let mut piece = shell;
    piece["serials"] = Value::Array(current);
    pieces.push(piece);
    Some(pieces)
}

/// Puts the parts of one payload back together: the first part's fields,
/// `list` concatenated with pallets merged by `sscc` and their items by
/// (`gtin`, `lot`, `expiry`), and no `part` fields. What a subscriber does;
/// kept here so the tests prove the split loses nothing.
pub fn merge(parts: &[Map<String, Value>], list: &str) -> Option<Map<String, Value>> {
    let mut out = parts.first()?.clone();
    out.remove("part");
    out.remove("parts");
    let mut merged: Vec<Value> = Vec::new();
    for part in parts {
        for pallet in part.get(list)?.as_array()? {
            let same = merged
                .iter_mut()
                .find(|p| p.get("sscc").is_some() && p.get("sscc") == pallet.get("sscc"));
            let Some(existing) = same else {
                merged.push(pallet.clone());
                continue;
            };
            let Some(Value::Array(items)) = existing.get_mut("items") else {
                continue;
            };
            for item in pallet.get("items")?.as_array()? {
                let key = |i: &Value| {
                    (
                        i.get("gtin").cloned(),
                        i.get("lot").cloned(),
                        i.get("expiry").cloned(),
                    )
                };
                match items.iter_mut().find(|i| key(i) == key(item)) {
                    Some(Value::Object(have)) => {
                        if let (Some(Value::Array(a)), Some(Value::Array(b))) =
                            (have.get_mut("serials"), item.get("serials"))
                        {
                            a.extend(b.iter().cloned());
                        }
                    }
                    _ => items.push(item.clone()),
                }
            }
        }
    }
    out.insert(list.into(), Value::Array(merged));
    Some(out)
}

/// Input from outside, cut down for an echo: strings to
/// [`ECHO_MAX_BYTES`] (with how long they were), lists to
/// [`ECHO_MAX_ITEMS`] (with how many were left out), recursively.
pub fn bounded(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(bounded_str(s)),
        Value::Array(a) => {
            let mut out: Vec<Value> = a.iter().take(ECHO_MAX_ITEMS).map(bounded).collect();
            if a.len() > ECHO_MAX_ITEMS {
                out.push(Value::String(format!(
                    "… and {} more",
                    a.len() - ECHO_MAX_ITEMS
                )));
            }
            Value::Array(out)
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .take(ECHO_MAX_ITEMS)
                .map(|(k, v)| (bounded_str(k), bounded(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A list of outside strings cut down for an echo, as [`bounded`] cuts a
/// JSON list: each string to [`ECHO_MAX_BYTES`], at most [`ECHO_MAX_ITEMS`]
/// of them and a last one saying how many more there were.
pub fn bounded_list(list: &[String]) -> Vec<String> {
    let mut out: Vec<String> = list
        .iter()
        .take(ECHO_MAX_ITEMS)
        .map(|s| bounded_str(s))
        .collect();
    if list.len() > ECHO_MAX_ITEMS {
        out.push(format!("… and {} more", list.len() - ECHO_MAX_ITEMS));
    }
    out
}

/// `s` itself when short; else its start (cut at a character boundary) and
/// how many bytes it had.
pub fn bounded_str(s: &str) -> String {
    if s.len() <= ECHO_MAX_BYTES {
        return s.to_string();
    }
    let mut end = ECHO_MAX_BYTES - 48;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes, cut)", &s[..end], s.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn pallet(sscc: &str, items: usize, serials: usize) -> Value {
        json!({
            "sscc": sscc,
            "zone": "rear",
            "items": (0..items).map(|i| json!({
                "gtin": "09520123456788",
                "lot": format!("L{i}"),
                "expiry": "2027-01-31",
                "serials": (0..serials).map(|s| format!("SN{i:03}-{s:06}")).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    fn event(pallets: Vec<Value>) -> Map<String, Value> {
        let v = json!({
            "schema": "coldgate.excursion/1",
            "event_id": "01JDZ7Q7F4J3H3Q7W4Y8Z9A0BC",
            "seq": u64::MAX,
            "phase": "started",
            "affected": pallets,
        });
        v.as_object().cloned().unwrap_or_default()
    }

    fn size(m: &Map<String, Value>) -> usize {
        json_len(&Value::Object(m.clone()))
    }

    #[test]
    fn a_payload_that_fits_is_left_as_it_is() {
        let e = event(vec![pallet("106141412345678908", 2, 10)]);
        let parts = split(&e, "affected", 128 * 1024).unwrap();
        assert_eq!(parts, vec![e]);
    }

    #[test]
    fn five_pallets_of_2500_serials_split_into_parts_under_the_limit_that_merge_back() {
        let pallets: Vec<Value> = (0..5)
            .map(|p| pallet(&format!("10614141234567890{p}"), 1, 2500))
            .collect();
        let e = event(pallets);
        assert!(size(&e) > 128 * 1024, "the case must need splitting");
        let parts = split(&e, "affected", 128 * 1024).unwrap();
        assert!(parts.len() >= 2);
        for (i, p) in parts.iter().enumerate() {
            assert!(size(p) <= 128 * 1024, "part {i}: {} bytes", size(p));
            assert_eq!(p["part"], i + 1);
            assert_eq!(p["parts"], parts.len());
            assert_eq!(p["event_id"], e["event_id"]);
        }
        assert_eq!(merge(&parts, "affected").unwrap(), e);
    }

    #[test]
    fn one_item_larger_than_the_limit_is_cut_between_serials() {
        let e = event(vec![pallet("106141412345678908", 1, 20_000)]);
        let parts = split(&e, "affected", 64 * 1024).unwrap();
        assert!(parts.len() > 4, "{}", parts.len());
        assert!(parts.iter().all(|p| size(p) <= 64 * 1024));
        assert_eq!(merge(&parts, "affected").unwrap(), e);
    }

    #[test]
    fn a_payload_whose_other_fields_alone_are_too_large_is_an_error() {
        let mut e = event(vec![pallet("106141412345678908", 1, 10)]);
        e.insert("note".into(), Value::from("x".repeat(5000)));
        assert!(matches!(
            split(&e, "affected", 4096),
            Err(SplitError::FixedPartTooLarge { .. })
        ));
    }

    #[test]
    fn one_serial_larger_than_the_limit_is_an_error() {
        let mut p = pallet("106141412345678908", 1, 1);
        p["items"][0]["serials"][0] = Value::from("9".repeat(10_000));
        assert!(matches!(
            split(&event(vec![p]), "affected", 4096),
            Err(SplitError::ElementTooLarge { .. })
        ));
    }

    #[test]
    fn echoed_input_is_cut_to_a_bound_saying_how_long_it_was() {
        let v = json!({"sscc": "1".repeat(200_000), "problems": vec!["bad"; 1000]});
        let b = bounded(&v);
        let sscc = b["sscc"].as_str().unwrap();
        assert!(sscc.len() <= ECHO_MAX_BYTES, "{}", sscc.len());
        assert!(sscc.contains("200000 bytes"));
        let problems = b["problems"].as_array().unwrap();
        assert_eq!(problems.len(), ECHO_MAX_ITEMS + 1);
        assert_eq!(problems[ECHO_MAX_ITEMS], "… and 968 more");
        assert_eq!(
            bounded(&json!({"sscc": "106141412345678908"}))["sscc"],
            "106141412345678908"
        );
        // A cut never splits a character.
        assert!(bounded_str(&"é".repeat(1000)).len() <= ECHO_MAX_BYTES);
    }

    proptest! {
        #[test]
        fn every_split_fits_and_merges_back_to_the_original(
            shape in proptest::collection::vec((1usize..4, 0usize..400), 0..8),
            max in 4096usize..40_000,
        ) {
            let pallets: Vec<Value> = shape
                .iter()
                .enumerate()
                .map(|(i, (items, serials))| pallet(&format!("1061414123456789{i:02}"), *items, *serials))
                .collect();
            let e = event(pallets);
            let parts = split(&e, "affected", max).unwrap();
            for p in &parts {
                prop_assert!(size(p) <= max);
            }
            let merged = merge(&parts, "affected").unwrap();
            prop_assert_eq!(merged, e);
        }
    }
}

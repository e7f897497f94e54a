//! Light in a closed container means the door is open: per light sensor,
//! opened when illuminance reaches the threshold, closed once it falls below
//! the threshold by more than the hysteresis.

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use super::profile::LightRule;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenDoor {
    /// Pairs the opened and closed events.
    pub door_id: Ulid,
    pub since_ms: i64,
    pub max_lux: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Door {
    #[serde(default)]
    pub open: Option<OpenDoor>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DoorTransition {
    Opened {
        door_id: Ulid,
        at_ms: i64,
        lux: f64,
    },
    Closed {
        door: OpenDoor,
        at_ms: i64,
        lux: f64,
    },
}

impl Door {
    /// Moves the open door's start by `delta_ms` (the wall clock jumped).
    pub fn shift_times(&mut self, delta_ms: i64) {
        if let Some(o) = &mut self.open {
            o.since_ms = o.since_ms.saturating_add(delta_ms);
        }
    }

    pub fn on_lux(&mut self, at_ms: i64, lux: f64, rule: &LightRule) -> Option<DoorTransition> {
        match &mut self.open {
            None if lux >= rule.threshold => {
                let door_id =
                    Ulid::from_parts(u64::try_from(at_ms.max(0)).unwrap_or(0), rand::random());
                self.open = Some(OpenDoor {
                    door_id,
                    since_ms: at_ms,
                    max_lux: lux,
                });
                Some(DoorTransition::Opened {
                    door_id,
                    at_ms,
                    lux,
                })
            }
            Some(o) if lux < rule.threshold - rule.hysteresis => {
                let door = o.clone();
                self.open = None;
                Some(DoorTransition::Closed { door, at_ms, lux })
            }
            Some(o) => {
                o.max_lux = o.max_lux.max(lux);
                None
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: LightRule = LightRule {
        threshold: 10.0,
        hysteresis: 5.0,
    };

    #[test]
    fn the_door_opens_at_the_threshold_and_closes_below_it_by_the_hysteresis() {
        let mut d = Door::default();
        assert_eq!(d.on_lux(0, 9.99, &RULE), None);
        assert!(matches!(
            d.on_lux(1, 10.0, &RULE),
            Some(DoorTransition::Opened { .. })
        ));
        assert_eq!(d.on_lux(2, 300.0, &RULE), None);
        assert_eq!(d.on_lux(3, 5.0, &RULE), None, "5.0 is not below 10 - 5");
        let Some(DoorTransition::Closed { door, at_ms, .. }) = d.on_lux(4, 4.99, &RULE) else {
            panic!("not closed")
        };
        assert_eq!((door.since_ms, at_ms, door.max_lux), (1, 4, 300.0));
    }
}

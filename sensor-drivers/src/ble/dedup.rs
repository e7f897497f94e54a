//! Counting each advertisement once, and refusing replayed encrypted ones.
//!
//! Sensors repeat the same advertisement several times to make sure one
//! arrives; the packet id (or encryption counter) tells repeats apart from new
//! data. For encrypted formats the counter must move forward: an older one is
//! a recording played back, which the cipher alone cannot detect.

use super::decode::{Decoded, ReplayCounter};

/// What to do with a decoded advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// New data: emit readings.
    Accept,
    /// The same packet again: count it once.
    Duplicate,
    /// An encryption counter that does not move forward: refuse.
    Replay,
}

/// Per-sensor memory of the last accepted advertisement.
#[derive(Debug, Clone, Default)]
pub struct DedupState {
    last_packet_id: Option<u32>,
    last_counter: Option<ReplayCounter>,
}

impl DedupState {
    /// Judges `d` and, when accepted, remembers it.
    pub fn judge(&mut self, d: &Decoded) -> Verdict {
        if let Some(counter) = d.replay_counter {
            if let Some(last) = self.last_counter {
                if counter == last {
                    return Verdict::Duplicate;
                }
                if !counter.is_after(last) {
                    return Verdict::Replay;
                }
            }
            self.last_counter = Some(counter);
            self.last_packet_id = d.packet_id;
            return Verdict::Accept;
        }
        if let Some(id) = d.packet_id {
            if self.last_packet_id == Some(id) {
                return Verdict::Duplicate;
            }
            self.last_packet_id = Some(id);
        }
        Verdict::Accept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ble::decode::Format;

    fn with(packet_id: Option<u32>, counter: Option<ReplayCounter>) -> Decoded {
        let mut d = Decoded::empty(Format::Bthome);
        d.packet_id = packet_id;
        d.replay_counter = counter;
        d
    }

    #[test]
    fn repeated_packet_ids_count_once_and_a_new_id_is_accepted() {
        let mut s = DedupState::default();
        assert_eq!(s.judge(&with(Some(9), None)), Verdict::Accept);
        assert_eq!(s.judge(&with(Some(9), None)), Verdict::Duplicate);
        assert_eq!(s.judge(&with(Some(10), None)), Verdict::Accept);
        // Plain packet ids wrap and may jump: any change is new data.
        assert_eq!(s.judge(&with(Some(3), None)), Verdict::Accept);
        // Without any id every advertisement is new.
        assert_eq!(s.judge(&with(None, None)), Verdict::Accept);
        assert_eq!(s.judge(&with(None, None)), Verdict::Accept);
    }

    #[test]
    fn an_encryption_counter_must_move_forward() {
        let mut s = DedupState::default();
        let c = |n| Some(ReplayCounter::U32(n));
        assert_eq!(s.judge(&with(None, c(100))), Verdict::Accept);
        assert_eq!(s.judge(&with(None, c(100))), Verdict::Duplicate);
        assert_eq!(s.judge(&with(None, c(99))), Verdict::Replay);
        assert_eq!(s.judge(&with(None, c(101))), Verdict::Accept);
        assert_eq!(s.judge(&with(None, c(100))), Verdict::Replay);
    }
}

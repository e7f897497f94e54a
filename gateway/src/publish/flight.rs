//! What one MQTT connection has sent and not yet seen settled, kept apart
//! from the network so its rules can be tested on their own.
//!
//! rumqttc reports `Outgoing::Publish(pkid)` in the order the requests were
//! queued, and `Incoming::PubAck(pkid)` in whatever order the broker sends
//! them. So a request waits in `queued` until it is written (then its pkid
//! is known), and in `by_pkid` until its PUBACK. An event leaves the outbox
//! only when its own PUBACK arrives: never by position, never by a pkid of
//! another connection.

use std::collections::{HashMap, VecDeque};

/// One publish request.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Sent {
    /// An outbox event: seq, full topic, payload.
    Event {
        seq: u64,
        topic: String,
        payload: Vec<u8>,
    },
    /// A telemetry message by id; `qos0`: settled once written.
    Telemetry { id: u64, qos0: bool },
    /// Status, manifest, a command's answer, a replayed event: nothing to
    /// report back, but it takes its place in the order.
    Other,
    /// The last status before DISCONNECT, awaited by the clean stop.
    Final,
}

/// What a written or acknowledged request settled.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Settled {
    /// The broker has the event: ingest may drop it from the outbox.
    Event {
        seq: u64,
        topic: String,
        payload: Vec<u8>,
    },
    Telemetry(u64),
}

/// One connection's requests. A new connection starts a new one: rumqttc
/// drops its pending requests when the broker has no session, so what was
/// in flight is read again from the outbox (`cursor` 0), and a pkid of the
/// old connection can settle nothing.
#[derive(Debug, Default)]
pub(super) struct InFlight {
    queued: VecDeque<Sent>,
    by_pkid: HashMap<u16, Sent>,
    /// The highest outbox seq queued on this connection.
    pub cursor: u64,
    /// The highest telemetry id queued on this connection.
    pub telemetry_cursor: u64,
}

impl InFlight {
    pub fn new() -> InFlight {
        InFlight::default()
    }

    /// A request handed to rumqttc, in its order.
    pub fn queue(&mut self, sent: Sent) {
        if let Sent::Event { seq, .. } = &sent {
            self.cursor = self.cursor.max(*seq);
        }
        if let Sent::Telemetry { id, .. } = &sent {
            self.telemetry_cursor = self.telemetry_cursor.max(*id);
        }
        self.queued.push_back(sent);
    }

    /// Requests queued or written and not yet settled: the window in use.
    pub fn used(&self) -> usize {
        self.queued.len() + self.by_pkid.len()
    }

    /// Whether the next request to be written is the final status.
    pub fn final_is_next(&self) -> bool {
        matches!(self.queued.front(), Some(Sent::Final))
    }

    /// rumqttc wrote the oldest queued request with `pkid`. A QoS 0
    /// telemetry message is settled by being written.
    pub fn written(&mut self, pkid: u16) -> Option<Settled> {
        match self.queued.pop_front()? {
            Sent::Telemetry { id, qos0: true } => Some(Settled::Telemetry(id)),
            Sent::Other | Sent::Final => None,
            sent => {
                self.by_pkid.insert(pkid, sent);
                None
            }
        }
    }

    /// The broker acknowledged `pkid`: what it settles, if anything (a
    /// PUBACK for a pkid not written on this connection settles nothing).
    pub fn acknowledged(&mut self, pkid: u16) -> Option<Settled> {
        match self.by_pkid.remove(&pkid)? {
            Sent::Event {
                seq,
                topic,
                payload,
            } => Some(Settled::Event {
                seq,
                topic,
                payload,
            }),
            Sent::Telemetry { id, .. } => Some(Settled::Telemetry(id)),
            Sent::Other | Sent::Final => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64) -> Sent {
        Sent::Event {
            seq,
            topic: format!("p/g/events/{seq}"),
            payload: vec![seq as u8],
        }
    }

    fn settled(seq: u64) -> Option<Settled> {
        Some(Settled::Event {
            seq,
            topic: format!("p/g/events/{seq}"),
            payload: vec![seq as u8],
        })
    }

    #[test]
    fn pubacks_out_of_order_settle_each_its_own_event() {
        let mut f = InFlight::new();
        for seq in 1..=3 {
            f.queue(event(seq));
        }
        assert_eq!(
            (f.written(10), f.written(11), f.written(12)),
            (None, None, None)
        );
        assert_eq!(f.acknowledged(12), settled(3));
        assert_eq!(f.acknowledged(10), settled(1));
        assert_eq!(f.used(), 1, "seq 2 is still in flight");
        assert_eq!(f.acknowledged(11), settled(2));
        assert_eq!(f.used(), 0);
        assert_eq!(f.cursor, 3);
    }

    #[test]
    fn a_puback_for_an_unknown_pkid_settles_nothing() {
        let mut f = InFlight::new();
        f.queue(event(1));
        assert_eq!(f.acknowledged(1), None, "not written yet: no pkid known");
        f.written(7);
        assert_eq!(f.acknowledged(8), None);
        assert_eq!(f.acknowledged(7), settled(1));
        assert_eq!(
            f.acknowledged(7),
            None,
            "a duplicate PUBACK settles nothing"
        );
    }

    #[test]
    fn after_a_reconnect_an_old_pkid_settles_nothing_and_the_outbox_is_read_from_the_start() {
        let mut old = InFlight::new();
        old.queue(event(5));
        old.written(1);
        let mut new = InFlight::new();
        assert_eq!(new.cursor, 0, "unacknowledged events are queued again");
        assert_eq!(new.acknowledged(1), None, "the old connection's pkid");
        new.queue(event(5));
        new.written(1);
        assert_eq!(new.acknowledged(1), settled(5));
    }

    #[test]
    fn telemetry_and_events_interleaved_are_settled_by_their_own_pkids() {
        let mut f = InFlight::new();
        f.queue(event(1));
        f.queue(Sent::Telemetry {
            id: 40,
            qos0: false,
        });
        f.queue(Sent::Telemetry { id: 41, qos0: true });
        f.queue(Sent::Other);
        f.queue(event(2));
        assert_eq!(f.written(1), None);
        assert_eq!(f.written(2), None);
        assert_eq!(
            f.written(0),
            Some(Settled::Telemetry(41)),
            "QoS 0: written is settled"
        );
        assert_eq!(f.written(3), None, "a status takes its place in the order");
        assert_eq!(f.written(4), None);
        assert_eq!(f.acknowledged(4), settled(2));
        assert_eq!(f.acknowledged(3), None, "the status settles nothing");
        assert_eq!(f.acknowledged(2), Some(Settled::Telemetry(40)));
        assert_eq!(f.acknowledged(1), settled(1));
        assert_eq!((f.cursor, f.telemetry_cursor, f.used()), (2, 41, 0));
    }

    #[test]
    fn the_final_status_is_recognised_before_it_is_written() {
        let mut f = InFlight::new();
        f.queue(event(1));
        f.queue(Sent::Final);
        assert!(!f.final_is_next());
        f.written(1);
        assert!(f.final_is_next());
        assert_eq!(f.written(2), None);
        assert!(!f.final_is_next());
    }
}

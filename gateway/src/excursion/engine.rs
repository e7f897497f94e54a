//! Applies the profiles to every reading, keeps the manifest and the lot
//! ledger, and turns what changed into events.
//!
//! Design: pure; the clock is the readings' times and `tick(now_ms)`. Which
//! profiles judge a sensor's reading: the profile of every pallet on board in
//! its zone, or the zone's own profile when the zone is empty; and any profile
//! whose condition on this sensor is still open, so an excursion outlives the
//! unload of its last pallet and still ends with its statistics.
//!
//! One room: the engine applies a reading to every rule, the manifest and the ledger in one step,
//! so that all of a reading's consequences are in one state change (committed whole or not at
//! all).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use coldgate_sensor_drivers::{Quantity, Reading};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::detector::{Direction, Limits, Tracker, Transition};
use super::door::{Door, DoorTransition};
use super::ledger::{Exhausted, Ledger, LotExposure, RuleTerms};
use super::physical;
use super::profile::{compile, Profile, Rule};
use super::silence::{Gap, Presence};
use crate::config::Config;
use crate::event::{parse_rfc3339, payload, rfc3339, Event};
use crate::manifest::{LoadCommand, LoadWarning, Manifest, ManifestError, Pallet};

/// Everything the engine must remember across a restart. Ingest commits it
/// with the readings and events that changed it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    /// Tracker per `sensor/quantity/profile/rule-index`.
    pub trackers: BTreeMap<String, Tracker>,
    /// Door state per light sensor.
    #[serde(default)]
    pub doors: BTreeMap<String, Door>,
    /// Last reading per `sensor/quantity`, for silence (before gaps were
    /// per quantity the key was the sensor alone: `Engine::new` carries
    /// such an entry over to each of the sensor's quantities).
    #[serde(default)]
    pub presence: BTreeMap<String, Presence>,
    #[serde(default)]
    pub manifest: Manifest,
    #[serde(default)]
    pub ledger: Ledger,
}

/// A profile rule bound to one sensor's quantity.
struct Bound {
    profile: String,
    rule: Rule,
    key: String,
    /// `profile/quantity/index`: the ledger's name for the rule.
    label: String,
    hold_ms: Option<i64>,
    /// ΔH of the profile, for the excursion's MKT.
    activation_energy: f64,
}

impl Bound {
    fn terms(&self, direction: Direction) -> RuleTerms {
        RuleTerms {
            budget_ms: self.rule.budget_ms(direction),
            freeze: self.rule.freeze && direction == Direction::Low,
        }
    }
}

struct SensorInfo {
    zone: String,
    quantities: Vec<Quantity>,
}

pub struct Engine {
    sensors: HashMap<Arc<str>, SensorInfo>,
    /// Zone → its profile id.
    zones: HashMap<String, String>,
    profiles: HashMap<String, Profile>,
    bound: HashMap<(Arc<str>, Quantity), Vec<Bound>>,
    state: EngineState,
    /// Events produced outside a reading (config pallets' load warnings),
    /// returned with the next reading or tick so ingest commits them with
    /// the state that records their cause.
    queued: Vec<Event>,
    /// The previous tick, in memory: after a restart every ended stay is
    /// looked at once more (judging is idempotent).
    last_tick_ms: Option<i64>,
    /// `manifest.serial_retention`, ms.
    serial_retention_ms: i64,
}

impl Engine {
    /// Builds the rules from a validated config and resumes from `state`.
    /// Trackers of rules that no longer exist are dropped; config pallets not
    /// yet in the manifest are loaded (their warnings are queued).
    pub fn new(config: &Config, mut state: EngineState) -> Engine {
        let profiles = compile(config);
        let zones: HashMap<String, String> = config
            .zones
            .iter()
            .map(|z| (z.id.clone(), z.profile.clone()))
            .collect();
        let mut sensors = HashMap::new();
        let mut bound: HashMap<(Arc<str>, Quantity), Vec<Bound>> = HashMap::new();
        let mut sorted: Vec<&Profile> = profiles.values().collect();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        for sensor in &config.sensors {
            let id: Arc<str> = Arc::from(sensor.id.as_str());
            sensors.insert(
                id.clone(),
                SensorInfo {
                    zone: sensor.zone.clone(),
                    quantities: sensor.quantities.clone(),
                },
            );
            for &q in &sensor.quantities {
                for profile in &sorted {
                    for rule in profile.rules_for(q) {
                        bound.entry((id.clone(), q)).or_default().push(Bound {
                            profile: profile.id.clone(),
                            rule: rule.clone(),
                            key: format!("{}/{q}/{}/{}", sensor.id, profile.id, rule.index),
                            label: format!("{}/{q}/{}", profile.id, rule.index),
                            hold_ms: profile.silence_ms,
                            activation_energy: profile.activation_energy(),
                        });
                    }
                }
            }
        }
        let keys: std::collections::HashSet<&str> =
            bound.values().flatten().map(|b| b.key.as_str()).collect();
        state.trackers.retain(|k, _| keys.contains(k.as_str()));
        for sensor in &config.sensors {
            if let Some(old) = state.presence.remove(&sensor.id) {
                for q in &sensor.quantities {
                    state
                        .presence
                        .entry(presence_key(&sensor.id, *q))
                        .or_insert_with(|| old.clone());
                }
            }
        }
        // A sensor or quantity no longer configured is no longer watched.
        let watched: std::collections::HashSet<String> = config
            .sensors
            .iter()
            .flat_map(|s| s.quantities.iter().map(|q| presence_key(&s.id, *q)))
            .collect();
        state.presence.retain(|k, _| watched.contains(k));
        let mut engine = Engine {
            sensors,
            zones,
            profiles,
            bound,
            state,
            queued: Vec::new(),
            last_tick_ms: None,
            serial_retention_ms: i64::try_from(config.manifest.serial_retention.as_millis())
                .unwrap_or(i64::MAX),
        };
        for pallet in &config.pallets {
            let (Some(loaded), unloaded) = (
                parse_rfc3339(&pallet.loaded_at),
                pallet.unloaded_at.as_deref().map(parse_rfc3339),
            ) else {
                continue;
            };
            if engine.state.manifest.has_stay(&pallet.sscc, loaded) {
                // An `unloaded_at` added to the file later closes the stay.
                if let Some(u) = unloaded.flatten() {
                    let open = engine.state.manifest.stays.iter().any(|p| {
                        p.sscc == pallet.sscc
                            && p.loaded_at_ms == loaded
                            && p.unloaded_at_ms.is_none()
                    });
                    if open {
                        if let Err(error) = engine.unload_pallet(&pallet.sscc, u) {
                            warn!(sscc = %pallet.sscc, %error, "Configured unload not applied.");
                        }
                    }
                }
                continue;
            }
            let cmd = LoadCommand {
                sscc: pallet.sscc.clone(),
                zone: pallet.zone.clone(),
                profile: pallet.profile.clone(),
                loaded_at_ms: loaded,
                unloaded_at_ms: unloaded.flatten(),
                items: pallet.items.clone(),
            };
            match engine.load_pallet(cmd) {
                Ok(events) => engine.queued.extend(events),
                Err(errors) => {
                    for error in errors {
                        warn!(sscc = %pallet.sscc, %error, "Configured pallet not loaded.");
                    }
                }
            }
        }
        engine
    }

    /// The wall clock jumped by `delta_ms` (positive forward) while
    /// monotonic time went on: moves every time the engine remembers by the
    /// same amount, so open excursions, delays, monitoring gaps and budgets
    /// measure monotonic time, and later readings (stamped with the new
    /// clock) continue them. The manifest's load and unload times are the
    /// operator's and stay as given. See docs/time.md.
    pub fn shift_times(&mut self, delta_ms: i64) {
        let st = &mut self.state;
        for t in st.trackers.values_mut() {
            t.shift_times(delta_ms);
        }
        for d in st.doors.values_mut() {
            d.shift_times(delta_ms);
        }
        for p in st.presence.values_mut() {
            p.shift_times(delta_ms);
        }
        st.ledger.shift_times(delta_ms);
        info!(delta_ms, "Engine times moved with the wall clock's jump.");
    }

    pub fn state(&self) -> &EngineState {
        &self.state
    }

    /// A lot's exposure, for diagnostics and the trip report.
    pub fn lot_exposure(&self, gtin: &str, lot: &str) -> Option<&LotExposure> {
        self.state.ledger.lot(gtin, lot)
    }

    /// Loads a pallet (validated: every problem is returned). Warnings are
    /// returned as `lot` events; they never refuse the load.
    pub fn load_pallet(&mut self, cmd: LoadCommand) -> Result<Vec<Event>, Vec<ManifestError>> {
        let errors = Manifest::check(
            &cmd,
            |z| self.zones.contains_key(z),
            |p| self.profiles.contains_key(p),
        );
        if !errors.is_empty() {
            return Err(errors);
        }
        let at = cmd.loaded_at_ms;
        let (sscc, zone) = (cmd.sscc.clone(), cmd.zone.clone());
        for item in &cmd.items {
            self.state.ledger.register(item, &sscc);
        }
        let warnings = self.state.manifest.load(cmd);
        info!(%sscc, %zone, warnings = warnings.len(), "Pallet loaded.");
        Ok(warnings
            .iter()
            .map(|w| warning_event(w, &sscc, &zone, at))
            .collect())
    }

    /// Unloads the pallet's open stay at `at_ms`. A lot watched for less
    /// than its MKT window has its MKT limit judged over the stay now.
    pub fn unload_pallet(&mut self, sscc: &str, at_ms: i64) -> Result<Vec<Event>, ManifestError> {
        self.state.manifest.unload(sscc, at_ms)?;
        info!(%sscc, "Pallet unloaded.");
        Ok(self.close_stays(|p| p.sscc == sscc && p.unloaded_at_ms == Some(at_ms), at_ms))
    }

    /// Judges the MKT of the lots of every stay `ended` picks, for stays
    /// shorter than the window (see `Ledger::close_stay`).
    fn close_stays(&mut self, ended: impl Fn(&Pallet) -> bool, at_ms: i64) -> Vec<Event> {
        let mut events = Vec::new();
        let EngineState {
            manifest, ledger, ..
        } = &mut self.state;
        for pallet in manifest.stays.iter().filter(|p| ended(p)) {
            let pid = effective_profile(pallet, &self.zones);
            let Some(rule) = self.profiles.get(pid).and_then(|p| p.mkt.as_ref()) else {
                continue;
            };
            for item in &pallet.items {
                if let Some(e) = ledger.close_stay(item, rule) {
                    events.push(lot_event(&e, pid, at_ms));
                }
            }
        }
        events
    }

    pub fn on_reading(&mut self, reading: &Reading) -> Vec<Event> {
        let mut events = std::mem::take(&mut self.queued);
        let Some(info) = self.sensors.get(&reading.sensor) else {
            return events;
        };
        if !info.quantities.contains(&reading.quantity) {
            return events;
        }
        let (at, value, zone) = (reading.at_ms, reading.value, info.zone.clone());
        let sensor: &str = &reading.sensor;
        let zone_profile = self.zones.get(&zone).and_then(|p| self.profiles.get(p));
        let limit = self.silence_limit(&zone, reading.quantity, at);
        let key = presence_key(sensor, reading.quantity);
        // get_mut first: this runs for every reading, the key is allocated once.
        if !self.state.presence.contains_key(&key) {
            self.state.presence.insert(key.clone(), Presence::new(at));
        }
        let Some(presence) = self.state.presence.get_mut(&key) else {
            return events;
        };
        if !physical::is_possible(reading.quantity, value) {
            if presence.on_fault() {
                warn!(sensor, quantity = %reading.quantity, value, "Impossible value: a sensor fault, not judged.");
                events.push(fault_event(
                    sensor,
                    &zone,
                    reading,
                    presence.seen_ms(),
                    limit,
                ));
            }
            return events;
        }
        for gap in presence.on_reading(at, limit) {
            events.push(sensor_event(sensor, &zone, reading.quantity, gap, limit));
        }

        if reading.quantity == Quantity::Illuminance {
            if let Some(light) = zone_profile.and_then(|p| p.light) {
                if !self.state.doors.contains_key(sensor) {
                    self.state.doors.insert(sensor.to_string(), Door::default());
                }
                let t = self
                    .state
                    .doors
                    .get_mut(sensor)
                    .and_then(|d| d.on_lux(at, value, &light));
                if let Some(t) = t {
                    events.push(door_event(sensor, &zone, &t, light.threshold));
                }
            }
        }

        let Some(bound) = self.bound.get(&(reading.sensor.clone(), reading.quantity)) else {
            return events;
        };
        // No allocation in the common case of a zone without pallets.
        let on_board: Vec<String> = self
            .state
            .manifest
            .on_board(&zone, at)
            .map(|p| effective_profile(p, &self.zones).to_string())
            .collect();
        let zone_default = self.zones.get(&zone).map(String::as_str);
        let is_active = |profile: &str| {
            if on_board.is_empty() {
                zone_default == Some(profile)
            } else {
                on_board.iter().any(|p| p == profile)
            }
        };
        let st = &mut self.state;
        for b in bound {
            let active = is_active(&b.profile);
            if !st.trackers.contains_key(&b.key) {
                if !active {
                    continue;
                }
                st.trackers.insert(b.key.clone(), Tracker::default());
            }
            let Some(tracker) = st.trackers.get_mut(&b.key) else {
                continue;
            };
            if !active && tracker.is_idle() {
                continue;
            }
            let mkt_ea = (reading.quantity == Quantity::Temperature).then_some(b.activation_energy);
            let step = tracker.on_value(at, value, &b.rule.limits, b.hold_ms, mkt_ea);
            for e in accrue(
                &st.manifest,
                &mut st.ledger,
                &self.zones,
                &zone,
                b,
                step.out_interval,
                step.unknown_interval,
            ) {
                events.push(lot_event(&e, &b.profile, at));
            }
            for t in &step.transitions {
                events.push(excursion_event(
                    st,
                    &self.zones,
                    sensor,
                    &zone,
                    reading.quantity,
                    b,
                    t,
                ));
            }
        }

        if reading.quantity == Quantity::Temperature {
            let EngineState {
                manifest, ledger, ..
            } = &mut *st;
            for pallet in manifest.on_board(&zone, at) {
                let pid = effective_profile(pallet, &self.zones);
                let Some(profile) = self.profiles.get(pid) else {
                    continue;
                };
                let Some(rule) = &profile.mkt else {
                    continue;
                };
                let hold = profile.silence_ms;
                for item in &pallet.items {
                    for e in ledger.observe_temperature(item, &pallet.sscc, rule, at, value, hold) {
                        events.push(lot_event(&e, pid, at));
                    }
                }
            }
        }
        events
    }

    /// The silence limit of `quantity` in `zone` at `at_ms`, when some
    /// profile judging the zone then (its own, or a pallet's on board) has
    /// a rule, MKT or light limit for it; the shortest such limit. None: the
    /// quantity is not judged there, so its silence is no gap.
    fn silence_limit(&self, zone: &str, quantity: Quantity, at_ms: i64) -> Option<i64> {
        let zone_profile = self.zones.get(zone).map(String::as_str);
        let pallets = self
            .state
            .manifest
            .on_board(zone, at_ms)
            .map(|p| effective_profile(p, &self.zones));
        zone_profile
            .into_iter()
            .chain(pallets)
            .filter_map(|id| self.profiles.get(id))
            .filter(|p| {
                p.rules_for(quantity).next().is_some()
                    || (quantity == Quantity::Temperature && p.mkt.is_some())
                    || (quantity == Quantity::Illuminance && p.light.is_some())
            })
            .filter_map(|p| p.silence_ms)
            .min()
    }

    /// At start: the exact time of a stored reading, which the persisted
    /// state rounds to the minute (see `silence`).
    pub fn restore_seen(&mut self, sensor: &str, quantity: Quantity, at_ms: i64) {
        if let Some(p) = self.state.presence.get_mut(&presence_key(sensor, quantity)) {
            p.restore_seen(at_ms);
        }
    }

    /// Where the stored readings that refine the persisted last-seen times
    /// (`restore_seen`) begin: the earliest of them that could still be
    /// within a silence limit of `now_ms`. An older one is a gap whatever
    /// its exact time, so a quantity unseen for weeks never makes the start
    /// read weeks of readings.
    pub fn oldest_seen_ms(&self, now_ms: i64) -> Option<i64> {
        let longest = self
            .profiles
            .values()
            .filter_map(|p| p.silence_ms)
            .max()
            .unwrap_or(0);
        let horizon = now_ms
            .saturating_sub(longest)
            .saturating_sub(super::silence::PERSIST_STEP_MS);
        self.state
            .presence
            .values()
            .filter(|p| p.silent_at_ms.is_none())
            .map(|p| p.last_seen_ms)
            .filter(|&t| t >= horizon)
            .min()
    }

    /// At start after the gateway was down (`cause`): every judged quantity
    /// not seen for longer than its silence limit has a gap, opened now and
    /// measured from its last reading, closed by its next one.
    pub fn resume(&mut self, now_ms: i64, cause: payload::GapCause) -> Vec<Event> {
        let mut events = Vec::new();
        let mut sensors: Vec<(&Arc<str>, &SensorInfo)> = self.sensors.iter().collect();
        sensors.sort_by(|a, b| a.0.cmp(b.0));
        for (id, info) in sensors {
            for &q in &info.quantities {
                let Some(limit) = self.silence_limit(&info.zone, q, now_ms) else {
                    continue;
                };
                let Some(presence) = self.state.presence.get_mut(&presence_key(id, q)) else {
                    continue;
                };
                if let Some(gap) = presence.resume(now_ms, limit, cause) {
                    events.push(sensor_event(id, &info.zone, q, gap, Some(limit)));
                }
            }
        }
        if !events.is_empty() {
            warn!(
                gaps = events.len(),
                ?cause,
                "The time the gateway was down is a monitoring gap."
            );
        }
        events
    }

    /// The batch timer's entry point: opens monitoring gaps for silent
    /// sensors, raises excursions whose delay ran out between readings, and
    /// charges standing out-of-range values to the lots' budgets.
    /// `now_ms` is ingest's clock (the newest of wall clock and readings).
    pub fn tick(&mut self, now_ms: i64) -> Vec<Event> {
        let mut events = std::mem::take(&mut self.queued);
        let mut sensors: Vec<(&Arc<str>, &SensorInfo)> = self.sensors.iter().collect();
        sensors.sort_by(|a, b| a.0.cmp(b.0));
        for (id, info) in sensors {
            for &q in &info.quantities {
                let Some(limit) = self.silence_limit(&info.zone, q, now_ms) else {
                    continue;
                };
                let presence = self
                    .state
                    .presence
                    .entry(presence_key(id, q))
                    .or_insert_with(|| Presence::new(now_ms));
                if let Some(gap) = presence.tick(now_ms, limit) {
                    warn!(sensor = %id, quantity = %q, zone = %info.zone, "Quantity silent: monitoring gap opened.");
                    events.push(sensor_event(id, &info.zone, q, gap, Some(limit)));
                }
            }
        }
        let st = &mut self.state;
        let mut keys: Vec<&(Arc<str>, Quantity)> = self.bound.keys().collect();
        keys.sort();
        for key in keys {
            let (sensor, quantity) = key;
            let Some(bound) = self.bound.get(key) else {
                continue;
            };
            let Some(zone) = self.sensors.get(sensor).map(|s| s.zone.clone()) else {
                continue;
            };
            for b in bound {
                let Some(tracker) = st.trackers.get_mut(&b.key) else {
                    continue;
                };
                // Charge the standing value beyond the limit up to now, so a
                // budget runs out on time even if the sensor falls silent
                // (and the silent time since as unknown); the ledger's union
                // absorbs the overlap with the intervals the next reading
                // closes.
                let (beyond, unknown) = tracker.standing(now_ms, &b.rule.limits, b.hold_ms);
                let raised = tracker.tick(now_ms, &b.rule.limits, b.hold_ms);
                for e in accrue(
                    &st.manifest,
                    &mut st.ledger,
                    &self.zones,
                    &zone,
                    b,
                    beyond,
                    unknown,
                ) {
                    events.push(lot_event(&e, &b.profile, now_ms));
                }
                if let Some(t) = raised {
                    events.push(excursion_event(
                        st,
                        &self.zones,
                        sensor,
                        &zone,
                        *quantity,
                        b,
                        &t,
                    ));
                }
            }
        }
        // Stays that ended since the last tick (a configured `unloaded_at`
        // passes without a command): their short-stay MKT is judged now.
        let since = self.last_tick_ms.replace(now_ms);
        let ended = |p: &Pallet| {
            p.unloaded_at_ms
                .is_some_and(|u| u <= now_ms && since.is_none_or(|s| u > s))
        };
        events.extend(self.close_stays(ended, now_ms));
        let horizon = now_ms.saturating_sub(self.serial_retention_ms);
        let forgotten = self.state.manifest.forget_serials(horizon);
        if forgotten > 0 {
            info!(
                forgotten,
                "Serials of packs gone longer than manifest.serial_retention forgotten."
            );
        }
        events
    }
}

/// A pallet's own profile, or its zone's.
fn effective_profile<'a>(pallet: &'a Pallet, zones: &'a HashMap<String, String>) -> &'a str {
    pallet
        .profile
        .as_deref()
        .or_else(|| zones.get(&pallet.zone).map(String::as_str))
        .unwrap_or("")
}

/// Charges time beyond the limit (`beyond`) and unmonitored time while a
/// condition was open (`unknown`), each `(direction, from, to)`, to every lot
/// on a pallet of the rule's profile in the zone, clipped to each stay.
fn accrue(
    manifest: &Manifest,
    ledger: &mut Ledger,
    zones: &HashMap<String, String>,
    zone: &str,
    b: &Bound,
    beyond: Option<(Direction, i64, i64)>,
    unknown: Option<(Direction, i64, i64)>,
) -> Vec<Exhausted> {
    let mut out = Vec::new();
    for (is_beyond, (dir, from, to)) in [(true, beyond), (false, unknown)]
        .into_iter()
        .filter_map(|(k, i)| Some((k, i?)))
    {
        for pallet in manifest.overlapping(zone, from, to) {
            if effective_profile(pallet, zones) != b.profile {
                continue;
            }
            let Some(span) = pallet.clip(from, to) else {
                continue;
            };
            for item in &pallet.items {
                if is_beyond {
                    out.extend(ledger.accrue(
                        item,
                        &pallet.sscc,
                        &b.label,
                        dir,
                        span,
                        b.terms(dir),
                    ));
                } else {
                    ledger.accrue_unknown(item, &pallet.sscc, &b.label, dir, span);
                }
            }
        }
    }
    out
}

/// The pallets of the rule's profile in the zone at some time of the
/// excursion, as the payload's `affected`; notes the excursion per lot.
fn affected(
    st: &mut EngineState,
    zones: &HashMap<String, String>,
    zone: &str,
    profile: &str,
    from: i64,
    to: i64,
    excursion_id: &str,
) -> Vec<payload::Affected> {
    let mut list = Vec::new();
    for pallet in st.manifest.overlapping(zone, from, to) {
        if effective_profile(pallet, zones) != profile {
            continue;
        }
        for item in &pallet.items {
            st.ledger.note_excursion(item, &pallet.sscc, excursion_id);
        }
        list.push(payload::Affected {
            sscc: pallet.sscc.clone(),
            zone: pallet.zone.clone(),
            items: pallet.items.clone(),
        });
    }
    list
}

fn excursion_event(
    st: &mut EngineState,
    zones: &HashMap<String, String>,
    sensor: &str,
    zone: &str,
    quantity: Quantity,
    b: &Bound,
    t: &Transition,
) -> Event {
    let (phase, id, dir, since, at, stats, exposure, unknown, end) = match *t {
        Transition::Started {
            excursion_id,
            direction,
            since_ms,
            at_ms,
            stats,
            exposure_ms,
            unknown_ms,
        } => (
            payload::ExcursionPhase::Started,
            excursion_id,
            direction,
            since_ms,
            at_ms,
            stats,
            exposure_ms,
            unknown_ms,
            None,
        ),
        Transition::Ended {
            excursion_id,
            direction,
            since_ms,
            ended_ms,
            back_ms,
            stats,
            exposure_ms,
            unknown_ms,
            degree_minutes,
            mkt,
        } => (
            payload::ExcursionPhase::Ended,
            excursion_id,
            direction,
            since_ms,
            ended_ms,
            stats,
            exposure_ms,
            unknown_ms,
            Some(payload::ExcursionEnd {
                back_in_range_at: rfc3339(back_ms),
                degree_minutes: round3(degree_minutes),
                mkt: mkt.map(round3),
            }),
        ),
    };
    let limits: &Limits = &b.rule.limits;
    let id = id.to_string();
    let terms = b.terms(dir);
    info!(sensor = %sensor, zone = %zone, profile = %b.profile, phase = ?phase, excursion = %id, "Excursion.");
    let body = payload::Excursion {
        phase,
        excursion_id: id.clone(),
        sensor_id: sensor.to_string(),
        zone: zone.to_string(),
        quantity,
        unit: quantity.unit().to_string(),
        direction: dir,
        // A direction is only ever classified against a limit that exists.
        limit: limits.limit(dir).unwrap_or(f64::NAN),
        exclusive: limits.exclusive,
        profile: b.profile.clone(),
        rule: b.label.clone(),
        allowance_s: terms.budget_ms.map(|ms| ms / 1000),
        freeze: terms.freeze,
        started_at: rfc3339(since),
        ended_at: end.as_ref().map(|_| rfc3339(at)),
        duration_s: exposure / 1000,
        unknown_s: unknown / 1000,
        min: round3(stats.min),
        max: round3(stats.max),
        mean: round3(stats.mean()),
        end,
        affected: affected(st, zones, zone, &b.profile, since, at, &id),
    };
    Event::new(at, body)
}

fn door_event(sensor: &str, zone: &str, t: &DoorTransition, threshold: f64) -> Event {
    debug!(sensor = %sensor, zone = %zone, "Door event.");
    let (body, at) = match t {
        DoorTransition::Opened {
            door_id,
            at_ms,
            lux,
        } => (
            payload::Door {
                phase: payload::DoorPhase::Opened,
                door_id: door_id.to_string(),
                sensor_id: sensor.to_string(),
                zone: zone.to_string(),
                lux: *lux,
                max_lux: None,
                threshold_lux: threshold,
                opened_at: rfc3339(*at_ms),
                closed_at: None,
                duration_s: 0,
            },
            *at_ms,
        ),
        DoorTransition::Closed { door, at_ms, lux } => (
            payload::Door {
                phase: payload::DoorPhase::Closed,
                door_id: door.door_id.to_string(),
                sensor_id: sensor.to_string(),
                zone: zone.to_string(),
                lux: *lux,
                max_lux: Some(door.max_lux),
                threshold_lux: threshold,
                opened_at: rfc3339(door.since_ms),
                closed_at: Some(rfc3339(*at_ms)),
                duration_s: at_ms.saturating_sub(door.since_ms) / 1000,
            },
            *at_ms,
        ),
    };
    Event::new(at, body)
}

fn presence_key(sensor: &str, quantity: Quantity) -> String {
    format!("{sensor}/{quantity}")
}

fn sensor_event(
    sensor: &str,
    zone: &str,
    quantity: Quantity,
    gap: Gap,
    limit_ms: Option<i64>,
) -> Event {
    let (phase, last_seen, at, cause) = match gap {
        Gap::Silent {
            last_seen_ms,
            at_ms,
            cause,
        } => (payload::SensorPhase::Silent, last_seen_ms, at_ms, cause),
        Gap::Back {
            last_seen_ms,
            at_ms,
            cause,
        } => (payload::SensorPhase::Back, last_seen_ms, at_ms, cause),
    };
    let body = payload::SensorGap {
        phase,
        sensor_id: sensor.to_string(),
        zone: zone.to_string(),
        quantity: Some(quantity),
        cause: Some(cause),
        last_seen_at: rfc3339(last_seen),
        gap_s: at.saturating_sub(last_seen) / 1000,
        silence_limit_s: limit_ms.map(|l| l / 1000),
        value: None,
        physical_range: None,
    };
    Event::new(at, body)
}

/// A physically impossible value (see `physical`).
fn fault_event(
    sensor: &str,
    zone: &str,
    reading: &Reading,
    seen_ms: i64,
    limit_ms: Option<i64>,
) -> Event {
    let body = payload::SensorGap {
        phase: payload::SensorPhase::Fault,
        sensor_id: sensor.to_string(),
        zone: zone.to_string(),
        quantity: Some(reading.quantity),
        cause: None,
        last_seen_at: rfc3339(seen_ms),
        gap_s: reading.at_ms.saturating_sub(seen_ms).max(0) / 1000,
        silence_limit_s: limit_ms.map(|l| l / 1000),
        // JSON has no NaN or infinity: those are sent as null.
        value: reading.value.is_finite().then_some(reading.value),
        physical_range: Some(physical::range(reading.quantity)),
    };
    Event::new(reading.at_ms, body)
}

fn lot_event(e: &Exhausted, profile: &str, at: i64) -> Event {
    warn!(gtin = %e.gtin, lot = %e.lot, reason = e.reason.as_str(), "Lot limit exhausted.");
    let mut lot = payload::Lot::new(payload::LotPhase::Exhausted, e.reason);
    lot.gtin = Some(e.gtin.clone());
    lot.lot = Some(e.lot.clone());
    lot.expiry = Some(e.expiry.clone());
    lot.profile = Some(profile.to_string());
    lot.pallets = Some(e.pallets.clone());
    lot.rule = Some(e.label.clone());
    lot.direction = e.direction;
    if e.reason == payload::LotReason::Budget {
        lot.out_of_range_s = Some((e.value / 1000.0).round() as i64);
        lot.budget_s = Some((e.limit / 1000.0).round() as i64);
    } else {
        lot.mkt = Some(round3(e.value));
        lot.mkt_limit = Some(e.limit);
    }
    Event::new(at, lot)
}

fn warning_event(w: &LoadWarning, sscc: &str, zone: &str, at: i64) -> Event {
    warn!(%sscc, reason = w.reason().as_str(), "Load warning.");
    let mut lot = payload::Lot::new(payload::LotPhase::Warning, w.reason());
    lot.sscc = Some(sscc.to_string());
    lot.zone = Some(zone.to_string());
    match w {
        LoadWarning::SsccOnBoard { .. } => {}
        LoadWarning::SerialOnBoard {
            gtin,
            serial,
            other_sscc,
        } => {
            lot.gtin = Some(gtin.clone());
            lot.serial = Some(serial.clone());
            lot.other_sscc = Some(other_sscc.clone());
        }
        LoadWarning::SerialSeenBefore { gtin, serial } => {
            lot.gtin = Some(gtin.clone());
            lot.serial = Some(serial.clone());
        }
        LoadWarning::SerialLotMismatch {
            gtin,
            serial,
            lot: this_lot,
            earlier_lot,
        } => {
            lot.gtin = Some(gtin.clone());
            lot.serial = Some(serial.clone());
            lot.lot = Some(this_lot.clone());
            lot.earlier_lot = Some(earlier_lot.clone());
        }
        LoadWarning::LotExpiryMismatch {
            gtin,
            lot: this_lot,
            expiry,
            earlier_expiry,
        } => {
            lot.gtin = Some(gtin.clone());
            lot.lot = Some(this_lot.clone());
            lot.expiry = Some(expiry.clone());
            lot.earlier_expiry = Some(earlier_expiry.clone());
        }
        LoadWarning::LotExpired {
            gtin,
            lot: this_lot,
            expiry,
        } => {
            lot.gtin = Some(gtin.clone());
            lot.lot = Some(this_lot.clone());
            lot.expiry = Some(Some(expiry.clone()));
        }
    }
    Event::new(at, lot)
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_exposure;
#[cfg(test)]
mod tests_support;

#[cfg(test)]
mod gap_tests;

#[cfg(test)]
mod reference;

#[cfg(test)]
mod schema;

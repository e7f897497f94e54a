//! The verdict a QA reviewer signs, decided from explicit findings only.
//!
//! Why a separate, pure function of plain inputs: the excursion engine's
//! ledger and lot types are being reworked (per-direction allowances, a
//! freeze rule, MKT over short stays); whatever they become, the report
//! hands `judge` the same few facts per lot and rule (spent, allowance or
//! none, exhausted), per excursion (allowance or none, freeze, still open)
//! and about the record (gaps, quantities with no data). The precedence
//! and its reasons are in `docs/report.md`, "The verdict".

use super::format_duration;

/// The one-line conclusion. Exactly one applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Data throughout, no excursion, no limit used up.
    WithinProfile,
    /// Excursions, each under a rule whose allowance still holds.
    ExcursionWithinAllowance,
    /// An allowance or the MKT limit of a lot is used up.
    AllowanceExceeded,
    /// Something only a person can judge: an excursion under a rule without
    /// an allowance, a freeze, an excursion still open.
    AssessmentRequired,
    /// The gateway did not watch the whole stay: a monitoring gap, downtime,
    /// or no reading at all of a judged quantity.
    RecordIncomplete,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::WithinProfile => "Within profile",
            Verdict::ExcursionWithinAllowance => "Excursion within allowance",
            Verdict::AllowanceExceeded => "Allowance exceeded",
            Verdict::AssessmentRequired => "Assessment required",
            Verdict::RecordIncomplete => "Record incomplete",
        }
    }

    /// A CSS class and stable attribute value.
    pub fn slug(self) -> &'static str {
        match self {
            Verdict::WithinProfile => "within-profile",
            Verdict::ExcursionWithinAllowance => "excursion-within-allowance",
            Verdict::AllowanceExceeded => "allowance-exceeded",
            Verdict::AssessmentRequired => "assessment-required",
            Verdict::RecordIncomplete => "record-incomplete",
        }
    }
}

/// One lot's spending under one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpend {
    /// The rule as people say it (`2–8 °C`).
    pub rule: String,
    pub spent_ms: i64,
    /// None: the rule has no allowance (any excursion needs assessment).
    pub allowance_ms: Option<i64>,
    /// The engine reported this allowance used up.
    pub exhausted: bool,
}

/// What is known about a lot's MKT limit. "Holds" only when it was
/// actually evaluated.
#[derive(Debug, Clone, PartialEq)]
pub enum MktFinding {
    /// The profile sets no MKT limit.
    NoLimit,
    /// There is a limit but it was not judged; `why` says why.
    NotEvaluated {
        limit: f64,
        why: String,
    },
    Holds {
        value: f64,
        limit: f64,
    },
    /// The engine reported it exceeded (over the stay or the window).
    Exceeded {
        what: String,
    },
}

/// One lot of the subject.
#[derive(Debug, Clone, PartialEq)]
pub struct LotFindings {
    /// `ABC123 (09520123456788)`.
    pub name: String,
    pub rules: Vec<RuleSpend>,
    pub mkt: MktFinding,
}

/// One excursion that affected the subject.
#[derive(Debug, Clone, PartialEq)]
pub struct ExcursionFinding {
    pub id: String,
    /// `temperature 2–8 °C, high`.
    pub what: String,
    /// The allowance of its rule; None when the rule has none.
    pub allowance_ms: Option<i64>,
    pub freeze: bool,
    /// Still open: the time of the last reading it is known to.
    pub ongoing_as_of: Option<String>,
}

/// A stretch of the stay the gateway did not watch, said in one sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordHole {
    pub sentence: String,
}

/// Everything the verdict depends on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findings {
    pub lots: Vec<LotFindings>,
    pub excursions: Vec<ExcursionFinding>,
    /// Monitoring gaps and downtime overlapping the stays.
    pub gaps: Vec<RecordHole>,
    /// Judged quantities without a single reading in a stay.
    pub no_data: Vec<RecordHole>,
}

/// The verdict and every condition that led to it, the deciding ones
/// first. Precedence (strongest first): Allowance exceeded, Record
/// incomplete, Assessment required, Excursion within allowance, Within
/// profile. An exceeded allowance is a finding that missing data cannot
/// undo (unwatched time can only add exposure); everything below it rests
/// on a complete record, so an incomplete record is never overridden by a
/// better verdict.
pub fn judge(f: &Findings) -> (Verdict, Vec<String>) {
    let mut exceeded = Vec::new();
    let mut notes = Vec::new();
    for lot in &f.lots {
        for r in &lot.rules {
            match r.allowance_ms {
                Some(a) if r.exhausted || r.spent_ms >= a => exceeded.push(format!(
                    "Lot {} spent {} out of range under {}: its allowance of {} is used up.",
                    lot.name,
                    format_duration(r.spent_ms),
                    r.rule,
                    format_duration(a)
                )),
                Some(a) => notes.push(format!(
                    "Lot {} spent {} of its {} allowance under {}.",
                    lot.name,
                    format_duration(r.spent_ms),
                    format_duration(a),
                    r.rule
                )),
                None => {}
            }
        }
        match &lot.mkt {
            MktFinding::Exceeded { what } => {
                exceeded.push(format!("Lot {} exceeded {what}.", lot.name))
            }
            MktFinding::NotEvaluated { limit, why } => notes.push(format!(
                "The MKT limit of {limit:.1} °C was not evaluated for lot {}: {why}.",
                lot.name
            )),
            MktFinding::Holds { value, limit } => notes.push(format!(
                "Lot {}: MKT {value:.2} °C, within its limit of {limit:.1} °C.",
                lot.name
            )),
            MktFinding::NoLimit => {}
        }
    }
    let incomplete: Vec<String> = f
        .gaps
        .iter()
        .chain(&f.no_data)
        .map(|h| h.sentence.clone())
        .collect();
    let mut assess = Vec::new();
    for e in &f.excursions {
        if e.allowance_ms.is_none() {
            assess.push(format!(
                "Excursion {} ({}) is under a rule without an allowance: it must be assessed.",
                e.id, e.what
            ));
        }
        if e.freeze {
            assess.push(format!(
                "Excursion {} ({}) reached freezing: it must be assessed.",
                e.id, e.what
            ));
        }
        if let Some(t) = &e.ongoing_as_of {
            assess.push(format!(
                "Excursion {} ({}) is ongoing as of {t}: its exposure is not final.",
                e.id, e.what
            ));
        }
    }
    let verdict = if !exceeded.is_empty() {
        Verdict::AllowanceExceeded
    } else if !incomplete.is_empty() {
        Verdict::RecordIncomplete
    } else if !assess.is_empty() {
        Verdict::AssessmentRequired
    } else if !f.excursions.is_empty() {
        Verdict::ExcursionWithinAllowance
    } else {
        Verdict::WithinProfile
    };
    let mut reasons = Vec::new();
    reasons.extend(exceeded);
    reasons.extend(incomplete);
    reasons.extend(assess);
    match f.excursions.len() {
        0 => reasons.push("No excursion affected it.".to_string()),
        n => reasons.push(format!(
            "{n} excursion{} affected it.",
            if n == 1 { "" } else { "s" }
        )),
    }
    reasons.extend(notes);
    (verdict, reasons)
}

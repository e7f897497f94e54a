//! What a sensor of each quantity can physically report. A value outside is
//! a broken probe, a wrong register map or a decoding fault, never a
//! temperature: judging it would raise an excursion for a product that was
//! never exposed (or, with a wrong sign, hide one). It is raised as a sensor
//! fault instead, and does not count as the quantity being observed.

use coldgate_sensor_drivers::Quantity;

/// The closed range `[min, max]` a quantity's value must lie in.
///
/// - temperature: above absolute zero, and at most 200 °C. Cryogenic
///   shippers (liquid nitrogen dry shippers, about −196 °C) are inside; no
///   probe used for pharmaceuticals reports more than 200 °C (PT100 class
///   probes go higher, but nothing shipped survives that).
/// - humidity: 0–100 % RH by definition.
/// - illuminance: 0 to 200,000 lx (direct sunlight is about 100,000–120,000).
/// - battery: 0–100 %; battery voltage: 0–60,000 mV.
pub fn range(quantity: Quantity) -> [f64; 2] {
    match quantity {
        Quantity::Temperature => [-273.15, 200.0],
        Quantity::Humidity => [0.0, 100.0],
        Quantity::Illuminance => [0.0, 200_000.0],
        Quantity::Battery => [0.0, 100.0],
        Quantity::BatteryVoltage => [0.0, 60_000.0],
    }
}

/// True for a value a sensor of `quantity` can report (NaN and infinities
/// never are).
pub fn is_possible(quantity: Quantity, value: f64) -> bool {
    let [min, max] = range(quantity);
    value.is_finite() && value >= min && value <= max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ends_of_each_range_are_possible_and_just_beyond_is_not() {
        for q in Quantity::ALL {
            let [min, max] = range(q);
            assert!(is_possible(q, min) && is_possible(q, max), "{q:?}");
            assert!(!is_possible(q, min - 0.01), "{q:?} below");
            assert!(!is_possible(q, max + 0.01), "{q:?} above");
            assert!(!is_possible(q, f64::NAN) && !is_possible(q, f64::INFINITY));
        }
    }

    #[test]
    fn a_liquid_nitrogen_shipper_is_a_temperature_and_minus_300_is_not() {
        assert!(is_possible(Quantity::Temperature, -196.0));
        assert!(!is_possible(Quantity::Temperature, -300.0));
        assert!(!is_possible(Quantity::Humidity, 101.0));
    }
}

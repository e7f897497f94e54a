//! The real radio: BlueZ over D-Bus through btleplug. The only file that
//! touches btleplug.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use btleplug::api::bleuuid::BleUuid;
use btleplug::api::{Central, CentralEvent, Manager as _, Peripheral as _, ScanFilter};
use btleplug::platform::{Adapter, Manager};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use serde::Serialize;
use tracing::warn;

use super::advertisement::Advertisement;
use super::decode::{decode, detect, Decoded, Format};
use super::mac::MacAddr;
use super::scanner::{AdvertisementStream, ScanError, Scanner};

/// How long BlueZ gets to answer when a session starts. Without a bound, a
/// wedged D-Bus would leave `coldgate ble scan` hanging.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a running session checks that its adapter still exists: BlueZ
/// does not end the event stream when an adapter is unplugged.
const HEALTH_INTERVAL: Duration = Duration::from_secs(15);

/// A [`Scanner`] over btleplug.
#[derive(Debug, Clone, Default)]
pub struct BtleplugScanner {
    adapter: Option<String>,
}

impl BtleplugScanner {
    /// Scans on the adapter called `adapter` (`hci0`), or the first one.
    pub fn new(adapter: Option<String>) -> Self {
        BtleplugScanner { adapter }
    }
}

impl Scanner for BtleplugScanner {
    fn describe(&self) -> String {
        format!("btleplug:{}", self.adapter.as_deref().unwrap_or("default"))
    }

    fn open(&mut self) -> BoxFuture<'_, Result<AdvertisementStream, ScanError>> {
        let name = self.adapter.clone();
        async move {
            tokio::time::timeout(OPEN_TIMEOUT, open_session(name))
                .await
                .map_err(|_| ScanError::Timeout {
                    seconds: OPEN_TIMEOUT.as_secs(),
                })?
        }
        .boxed()
    }
}

fn bt(e: btleplug::Error) -> ScanError {
    ScanError::Bluetooth(e.to_string())
}

async fn find_adapter(name: Option<&str>) -> Result<Adapter, ScanError> {
    let manager = Manager::new().await.map_err(|e| ScanError::NoAdapter {
        reason: format!("cannot reach BlueZ over the system D-Bus ({e})"),
    })?;
    let adapters = manager.adapters().await.map_err(|e| ScanError::NoAdapter {
        reason: format!("BlueZ did not list adapters ({e})"),
    })?;
    let Some(wanted) = name else {
        return adapters.into_iter().next().ok_or(ScanError::NoAdapter {
            reason: "BlueZ reports none".to_string(),
        });
    };
    let mut present = Vec::new();
    for a in adapters {
        let info = a.adapter_info().await.unwrap_or_default();
        if info == wanted || info.starts_with(&format!("{wanted} ")) {
            return Ok(a);
        }
        present.push(info);
    }
    if present.is_empty() {
        return Err(ScanError::NoAdapter {
            reason: "BlueZ reports none".to_string(),
        });
    }
    Err(ScanError::AdapterNotFound {
        name: wanted.to_string(),
        present,
    })
}

enum Item {
    Event(CentralEvent),
    HealthCheck,
}

async fn open_session(name: Option<String>) -> Result<AdvertisementStream, ScanError> {
    let adapter = find_adapter(name.as_deref()).await?;
    let events = adapter.events().await.map_err(bt)?;
    adapter
        .start_scan(ScanFilter::default())
        .await
        .map_err(bt)?;
    let checks = futures::stream::unfold((), |()| async {
        tokio::time::sleep(HEALTH_INTERVAL).await;
        Some((Item::HealthCheck, ()))
    });
    let items = futures::stream::select(events.map(Item::Event), checks);
    let stream = items
        .then(move |item| {
            let adapter = adapter.clone();
            async move {
                match item {
                    Item::Event(ev) => Ok(to_advertisement(&adapter, ev).await),
                    Item::HealthCheck => match adapter.adapter_info().await {
                        Ok(_) => Ok(None),
                        Err(error) => {
                            warn!(%error, "Bluetooth adapter no longer answers.");
                            Err(())
                        }
                    },
                }
            }
        })
        .take_while(|r| futures::future::ready(r.is_ok()))
        .filter_map(|r| futures::future::ready(r.ok().flatten()))
        .boxed();
    Ok(stream)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn to_advertisement(adapter: &Adapter, ev: CentralEvent) -> Option<Advertisement> {
    let id = match ev {
        CentralEvent::DeviceDiscovered(id)
        | CentralEvent::ManufacturerDataAdvertisement { id, .. }
        | CentralEvent::ServiceDataAdvertisement { id, .. } => id,
        _ => return None,
    };
    let props = adapter
        .peripheral(&id)
        .await
        .ok()?
        .properties()
        .await
        .ok()??;
    Some(Advertisement {
        address: MacAddr(props.address.into_inner()),
        rssi: props.rssi,
        manufacturer_data: props.manufacturer_data.into_iter().collect(),
        service_data: props
            .service_data
            .into_iter()
            .filter_map(|(uuid, data)| uuid.to_ble_u16().map(|short| (short, data)))
            .collect(),
        local_name: props.local_name,
        at_ms: now_ms(),
    })
}

/// One advertiser heard by [`scan`], for `coldgate ble scan`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeenAdvertiser {
    pub mac: MacAddr,
    pub local_name: Option<String>,
    /// Strongest RSSI heard, dBm.
    pub rssi: Option<i16>,
    pub advertisements: u64,
    pub last_seen_ms: i64,
    /// The format the bytes identify, if any.
    pub format: Option<Format>,
    /// The last advertisement decoded without a key, if that worked.
    pub decoded: Option<Decoded>,
}

/// Listens for `seconds` on the default adapter and lists every advertiser,
/// strongest first. Errors at once, without hanging, when there is no adapter.
pub async fn scan(seconds: u64) -> Result<Vec<SeenAdvertiser>, ScanError> {
    scan_with(
        &mut BtleplugScanner::new(None),
        Duration::from_secs(seconds),
    )
    .await
}

/// [`scan`] over any scanner, on a chosen adapter or a script.
pub async fn scan_with(
    scanner: &mut dyn Scanner,
    listen: Duration,
) -> Result<Vec<SeenAdvertiser>, ScanError> {
    let mut stream = tokio::time::timeout(OPEN_TIMEOUT, scanner.open())
        .await
        .map_err(|_| ScanError::Timeout {
            seconds: OPEN_TIMEOUT.as_secs(),
        })??;
    let mut seen: BTreeMap<MacAddr, SeenAdvertiser> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + listen;
    while let Ok(Some(adv)) = tokio::time::timeout_at(deadline, stream.next()).await {
        let format = detect(&adv);
        let decoded =
            format.and_then(|f| decode(&adv, Some(f), Some(adv.address.octets()), None).ok());
        let e = seen.entry(adv.address).or_insert_with(|| SeenAdvertiser {
            mac: adv.address,
            local_name: None,
            rssi: None,
            advertisements: 0,
            last_seen_ms: adv.at_ms,
            format: None,
            decoded: None,
        });
        e.advertisements += 1;
        e.last_seen_ms = adv.at_ms;
        e.rssi = e.rssi.max(adv.rssi);
        e.local_name = adv.local_name.or(e.local_name.take());
        e.format = format.or(e.format);
        e.decoded = decoded.or(e.decoded.take());
    }
    let mut list: Vec<SeenAdvertiser> = seen.into_values().collect();
    list.sort_by_key(|a| std::cmp::Reverse(a.rssi));
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ble::scanner::{ScriptedScanner, Session};

    #[tokio::test]
    async fn scan_without_an_adapter_errors_quickly_instead_of_hanging() {
        // This machine has no Bluetooth adapter (and no BlueZ).
        let result = tokio::time::timeout(Duration::from_secs(30), scan(1))
            .await
            .expect("scan must not hang");
        let err = result.expect_err("there is no adapter here");
        assert!(matches!(err, ScanError::NoAdapter { .. }), "{err:?}");
        assert!(err.to_string().starts_with("no Bluetooth adapter"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn scan_lists_each_advertiser_once_strongest_first() {
        let ruuvi = hex::decode("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F").unwrap();
        let a = MacAddr([0xCB, 0xB8, 0x33, 0x4C, 0x88, 0x4F]);
        let b = MacAddr([1, 2, 3, 4, 5, 6]);
        let mut scanner = ScriptedScanner::new([Session::Deliver(vec![
            Advertisement::new(a, 1)
                .with_manufacturer_data(0x0499, ruuvi.clone())
                .with_rssi(-80),
            Advertisement::new(b, 2)
                .with_manufacturer_data(0x004C, vec![2, 0x15])
                .with_rssi(-40),
            Advertisement::new(a, 3)
                .with_manufacturer_data(0x0499, ruuvi)
                .with_rssi(-70),
        ])]);
        let list = scan_with(&mut scanner, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].mac, b);
        assert_eq!(list[0].format, None);
        assert_eq!(list[1].advertisements, 2);
        assert_eq!(list[1].rssi, Some(-70));
        assert_eq!(list[1].format, Some(Format::RuuviV5));
        assert_eq!(
            list[1].decoded.as_ref().and_then(|d| d.temperature_c),
            Some(24.3)
        );
        assert_eq!(list[1].last_seen_ms, 3);
    }
}

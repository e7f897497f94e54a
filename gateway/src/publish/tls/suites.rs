//! Which cipher suite the gateway offers first.
//!
//! The broker usually takes the client's first suite it supports, so the
//! order decides the cipher of every byte published. AES-GCM is the fastest
//! where the CPU has AES instructions (x86-64, a Pi 5's Cortex-A76); a Pi 4's
//! Cortex-A72 and the 32-bit Pis have none, and there ChaCha20-Poly1305 in
//! plain code is several times faster than AES in plain code. The check runs
//! once per connection attempt, at run time, because one arm64 package runs
//! on both kinds of Pi.

use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, SupportedCipherSuite};

/// Names the detection result can be overridden with, in
/// `COLDGATE_TLS_PREFER`: for the interoperability test (both orders against
/// one broker on one machine) and for a CPU whose detection is wrong.
pub const PREFER_ENV: &str = "COLDGATE_TLS_PREFER";

/// Which family of suites goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    AesGcm,
    ChaCha20,
}

impl Preference {
    /// The order for this CPU, unless `COLDGATE_TLS_PREFER` says `aes` or
    /// `chacha`.
    pub fn for_this_machine() -> Preference {
        match std::env::var(PREFER_ENV).ok().as_deref() {
            Some("chacha") => Preference::ChaCha20,
            Some("aes") => Preference::AesGcm,
            _ => Preference::from_aes_instructions(cpu_has_aes()),
        }
    }

    /// ChaCha first only on ARM without AES instructions: elsewhere (x86-64
    /// has had AES-NI for fifteen years) AES-GCM stays first, as rustls
    /// orders it.
    pub fn from_aes_instructions(aes: Option<bool>) -> Preference {
        match aes {
            Some(false) => Preference::ChaCha20,
            Some(true) | None => Preference::AesGcm,
        }
    }
}

/// Whether the CPU has AES instructions: Some on ARM, where the answer
/// changes the order; None elsewhere.
fn cpu_has_aes() -> Option<bool> {
    #[cfg(target_arch = "aarch64")]
    {
        Some(std::arch::is_aarch64_feature_detected!("aes"))
    }
    // Stable Rust has no run-time feature check for 32-bit ARM; the kernel
    // lists the instructions the CPU has in /proc/cpuinfo (`Features:`).
    #[cfg(target_arch = "arm")]
    {
        Some(
            std::fs::read_to_string("/proc/cpuinfo")
                .map(|text| cpuinfo_lists_aes(&text))
                .unwrap_or(false),
        )
    }
    #[cfg(not(any(target_arch = "aarch64", target_arch = "arm")))]
    {
        None
    }
}

/// Whether a `Features` line of /proc/cpuinfo names `aes` (a 64-bit kernel
/// running a 32-bit program lists the ARMv8 crypto extensions there too).
#[cfg_attr(not(any(target_arch = "arm", test)), allow(dead_code))]
pub fn cpuinfo_lists_aes(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(key, _)| key.trim() == "Features")
        .any(|(_, flags)| flags.split_whitespace().any(|f| f == "aes"))
}

fn is_chacha(suite: &SupportedCipherSuite) -> bool {
    matches!(
        suite.suite(),
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
            | CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            | CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
    )
}

/// The provider's suites in the order to offer them: for ChaCha, the
/// ChaCha20-Poly1305 suites move to the front; everything else keeps the
/// provider's order (TLS 1.3 before 1.2, stronger before weaker).
pub fn order(
    mut suites: Vec<SupportedCipherSuite>,
    prefer: Preference,
) -> Vec<SupportedCipherSuite> {
    if prefer == Preference::ChaCha20 {
        // A stable sort: within each family the order stays.
        suites.sort_by_key(|s| !is_chacha(s));
    }
    suites
}

/// ring's provider with the suites in the order `prefer` asks for.
pub fn provider(prefer: Preference) -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = order(provider.cipher_suites, prefer);
    provider
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(suites: &[SupportedCipherSuite]) -> Vec<CipherSuite> {
        suites.iter().map(|s| s.suite()).collect()
    }

    #[test]
    fn an_arm_cpu_without_aes_offers_chacha_first_and_keeps_every_suite() {
        let all = rustls::crypto::ring::default_provider().cipher_suites;
        let ordered = order(all.clone(), Preference::from_aes_instructions(Some(false)));
        assert_eq!(
            names(&ordered)[..3],
            [
                CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
                CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            ]
        );
        let mut before = names(&all);
        let mut after = names(&ordered);
        before.sort_by_key(|s| u16::from(*s));
        after.sort_by_key(|s| u16::from(*s));
        assert_eq!(before, after, "the order changes, the set does not");
    }

    #[test]
    fn a_cpu_with_aes_or_not_arm_offers_aes_gcm_first() {
        for aes in [Some(true), None] {
            let ordered = order(
                rustls::crypto::ring::default_provider().cipher_suites,
                Preference::from_aes_instructions(aes),
            );
            assert_eq!(
                names(&ordered)[..2],
                [
                    CipherSuite::TLS13_AES_256_GCM_SHA384,
                    CipherSuite::TLS13_AES_128_GCM_SHA256,
                ],
                "aes instructions: {aes:?}"
            );
        }
    }

    /// A real rustls server that, like mosquitto's OpenSSL by default,
    /// takes the client's first suite it supports; `versions` limits it to
    /// TLS 1.2 or 1.3. Returns the suite the handshake settled on.
    fn negotiated(
        prefer: Preference,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> CipherSuite {
        use std::sync::Arc;

        let cert = rcgen::generate_simple_self_signed(vec!["broker.test".to_string()]).unwrap();
        let cert_der = cert.cert.der().clone();
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
        let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key)
        .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert_der).unwrap();
        // The configuration the publisher connects with.
        let client_config = super::super::build(roots, None, None, prefer)
            .unwrap()
            .config;

        let name = rustls::pki_types::ServerName::try_from("broker.test").unwrap();
        let mut client = rustls::ClientConnection::new(client_config, name).unwrap();
        let mut server = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
        let mut wire = Vec::new();
        for _ in 0..10 {
            wire.clear();
            while client.wants_write() {
                client.write_tls(&mut wire).unwrap();
            }
            server.read_tls(&mut wire.as_slice()).unwrap();
            server.process_new_packets().unwrap();
            wire.clear();
            while server.wants_write() {
                server.write_tls(&mut wire).unwrap();
            }
            client.read_tls(&mut wire.as_slice()).unwrap();
            client.process_new_packets().unwrap();
            if !client.is_handshaking() && !server.is_handshaking() {
                break;
            }
        }
        assert!(!client.is_handshaking(), "the handshake did not finish");
        let suite = server.negotiated_cipher_suite().unwrap().suite();
        assert_eq!(client.negotiated_cipher_suite().unwrap().suite(), suite);
        suite
    }

    #[test]
    fn a_server_honouring_the_client_order_settles_on_the_suite_offered_first() {
        let tls13 = [&rustls::version::TLS13];
        let tls12 = [&rustls::version::TLS12];
        assert_eq!(
            negotiated(Preference::ChaCha20, &tls13),
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
        );
        assert_eq!(
            negotiated(Preference::AesGcm, &tls13),
            CipherSuite::TLS13_AES_256_GCM_SHA384
        );
        // rcgen's default key is ECDSA P-256: the ECDSA suites of TLS 1.2.
        assert_eq!(
            negotiated(Preference::ChaCha20, &tls12),
            CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        );
        assert_eq!(
            negotiated(Preference::AesGcm, &tls12),
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        );
    }

    #[test]
    fn a_pi_4_cpuinfo_has_no_aes_and_a_pi_5_cpuinfo_has() {
        let pi4 = "processor\t: 0\nBogoMIPS\t: 108.00\n\
                   Features\t: fp asimd evtstrm crc32 cpuid\nCPU part\t: 0xd08\n";
        let pi5 = "processor\t: 0\nBogoMIPS\t: 108.00\n\
                   Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid\n";
        let armv7_pi4 = "Features\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32\n";
        assert!(!cpuinfo_lists_aes(pi4));
        assert!(cpuinfo_lists_aes(pi5));
        assert!(!cpuinfo_lists_aes(armv7_pi4));
        assert!(!cpuinfo_lists_aes("model name\t: aes lookalike\n"));
    }
}

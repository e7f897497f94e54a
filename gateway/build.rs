//! Lays the steady state's code out together in the executable.
//!
//! After `daemon/trim.rs` unmaps start-up's code, a running gateway maps back
//! only the code it runs, but the kernel maps file pages in 64 KiB windows
//! around each fault: with the steady state's functions spread over all of
//! `.text`, its 1.4 MiB of code kept 3.6 MiB resident (docs/performance.md,
//! "Footprint"). `link/steady-state.order` lists those functions (made by
//! `scripts/steady-state-order` from a profile of this very release profile),
//! and lld places them first, one after another.
//!
//! Only where the linker is lld: rustc links x86_64-unknown-linux-gnu with its
//! own lld (since Rust 1.90). GNU ld, which the ARM targets use, has no such
//! option. Names missing from the build (a function changed since the profile)
//! are skipped quietly: a stale list costs memory, never correctness.
//! `COLDGATE_NO_SYMBOL_ORDER=1` turns it off, e.g. to measure what it gains.

use std::path::Path;

fn main() {
    let order = Path::new("link/steady-state.order");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-env-changed=COLDGATE_NO_SYMBOL_ORDER");
    let target = std::env::var("TARGET").unwrap_or_default();
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let off = std::env::var_os("COLDGATE_NO_SYMBOL_ORDER").is_some_and(|v| v != "0");
    if target != "x86_64-unknown-linux-gnu" || !release || off || !order.exists() {
        return;
    }
    let Ok(path) = order.canonicalize() else {
        return;
    };
    for kind in ["bins", "benches"] {
        println!(
            "cargo:rustc-link-arg-{kind}=-Wl,--symbol-ordering-file={}",
            path.display()
        );
        println!("cargo:rustc-link-arg-{kind}=-Wl,--no-warn-symbol-ordering");
    }
}

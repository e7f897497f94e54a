//! Power cuts at a count too large for `cargo test`: records the real write
//! path over a recording backend, builds crash images from every sync point
//! (un-synced writes dropped, reordered or torn at 512-byte sectors) and
//! opens each with the real `Store::open`. The same code as the unit test
//! `store::powercut::tests` (this includes its file), only more images.
//!
//! `cargo bench -p coldgate --bench powercut` checks 5,000 images;
//! `COLDGATE_POWERCUT_IMAGES`, `COLDGATE_POWERCUT_COMMITS` and
//! `COLDGATE_POWERCUT_SEED` change the count, the workload and the seed.
//! Exits non-zero if any image lost committed data.

// The included file names the coldgate API as `crate::store` and
// `crate::audit`, which these imports provide.
use coldgate::{audit, store};

// The creation test in the library uses parts of it this bench does not.
#[allow(dead_code)]
#[path = "../src/store/powercut.rs"]
mod powercut;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let images = env_or("COLDGATE_POWERCUT_IMAGES", 5_000usize);
    let commits = env_or("COLDGATE_POWERCUT_COMMITS", 60usize);
    let seed = env_or("COLDGATE_POWERCUT_SEED", rand::random::<u64>());
    let report = match powercut::run(seed, images, commits) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("powercut: the run failed: {e}");
            std::process::exit(2);
        }
    };
    println!("powercut_seed                {}", report.seed);
    println!("powercut_images_checked      {}", report.images);
    println!("powercut_commits_covered     {}", report.commits);
    println!("powercut_sync_points         {}", report.sync_points);
    println!("powercut_in_flight_kept      {}", report.in_flight_kept);
    println!("powercut_in_flight_lost      {}", report.in_flight_lost);
    println!(
        "powercut_seconds             {:.1}",
        report.elapsed.as_secs_f64()
    );
    println!("powercut_failures            {}", report.failures.len());
    for f in &report.failures {
        println!("  {f}");
    }
    if !report.failures.is_empty() {
        std::process::exit(1);
    }
}

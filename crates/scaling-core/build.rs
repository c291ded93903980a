//! Rebuild when a migration is added or changed: `refinery::embed_migrations!` reads
//! `migrations/` at compile time but cargo does not know it depends on that directory.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}

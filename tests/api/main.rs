//! Integration tests: a real berth on port 0, a real SQLite file, real HTTP.

mod helpers;

mod admin;
mod admin_pages;
mod bill;
mod checkpoints;
mod cli;
mod connections;
mod counting;
mod cpix;
mod crew_attack;
mod errors;
mod fail_closed;
mod fairplay;
mod faults;
mod ground;
mod hostile;
mod hostile_vessel;
mod license;
mod prune;
mod reports;
mod systemd;
mod tls;

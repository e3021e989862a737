//! Integration tests, compiled into one binary. Everything except `mock` runs against the real
//! OpenSearch named by SEQTAIL_TEST_URL (started by scripts/test.sh).

mod baseline;
mod cli;
mod cluster;
mod delivery;
mod groups;
mod helpers;
mod mock;
mod ops;
mod produce;

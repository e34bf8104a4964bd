#[allow(unused_imports)]
use crate::harness::{each_store, system};

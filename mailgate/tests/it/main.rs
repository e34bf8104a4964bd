//! placeholder

mod bounce;

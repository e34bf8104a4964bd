//! The benchmarks, one module per subcommand.

pub mod lookup;

//! One module per subcommand.

pub mod bench;
pub mod converse;
pub mod devices;
pub mod generate;
mod model_dir;
pub mod models;
pub mod say;
pub mod serve;
pub mod talk;
pub mod transcribe;

//! One module per subcommand.

pub mod devices;
pub mod generate;
mod model_dir;
pub mod models;
pub mod say;
pub mod transcribe;

//! `parley devices`: the sound cards parley can capture from and play to.

#[cfg(feature = "device")]
pub fn print_devices() -> anyhow::Result<()> {
    use parley_audio_io::device::{DeviceDirection, list_devices};

    let devices = list_devices()?;
    if devices.is_empty() {
        println!(
            "No audio devices found on this machine. parley can still run as a server \
             (`parley serve`) or from files; `parley talk` needs a microphone and a speaker."
        );
        return Ok(());
    }
    for direction in [DeviceDirection::Input, DeviceDirection::Output] {
        let title = match direction {
            DeviceDirection::Input => "Input devices (microphones)",
            DeviceDirection::Output => "Output devices (speakers)",
        };
        println!("{title}:");
        let mut any = false;
        for d in devices.iter().filter(|d| d.direction == direction) {
            any = true;
            let default = if d.is_default { " [default]" } else { "" };
            let config = match (d.default_rate, d.default_channels) {
                (Some(rate), Some(ch)) => format!("{rate} Hz, {ch} ch"),
                _ => "default config unknown".to_string(),
            };
            println!("  {}{default}: {config}", d.name);
            for r in &d.supported {
                let rates = if r.min_rate == r.max_rate {
                    format!("{} Hz", r.min_rate)
                } else {
                    format!("{}–{} Hz", r.min_rate, r.max_rate)
                };
                println!("      {rates}, {} ch, {}", r.channels, r.sample_format);
            }
        }
        if !any {
            println!("  (none)");
        }
    }
    Ok(())
}

#[cfg(not(feature = "device"))]
pub fn print_devices() -> anyhow::Result<()> {
    anyhow::bail!(
        "this parley was built without sound-card support (cargo feature `device`); \
         rebuild with default features to list devices"
    )
}

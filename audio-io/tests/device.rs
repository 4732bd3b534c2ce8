//! The cpal device layer on whatever this machine has. Without sound hardware (CI, containers)
//! listing must still work (empty list or a clear error) and opening must fail cleanly.
#![cfg(feature = "device")]

use parley_audio_io::{AudioError, CaptureDevice, PlaybackDevice, list_devices};

#[test]
fn listing_devices_never_panics_and_reports_consistent_ranges() {
    match list_devices() {
        Ok(devices) => {
            for d in &devices {
                assert!(!d.name.is_empty());
                for r in &d.supported {
                    assert!(r.min_rate <= r.max_rate, "{d:?}");
                    assert!(r.channels > 0, "{d:?}");
                }
                if let Some(rate) = d.default_rate {
                    assert!(rate > 0, "{d:?}");
                }
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

#[test]
fn opening_an_unknown_device_is_a_clear_error() {
    let name = "parley-no-such-device";
    for result in [
        CaptureDevice::open(Some(name)).map(|_| ()),
        PlaybackDevice::open(Some(name)).map(|_| ()),
    ] {
        match result {
            Err(AudioError::DeviceNotFound { name: n, .. }) => assert_eq!(n, name),
            // A host that cannot even enumerate says so.
            Err(AudioError::Device { context, .. }) => assert_eq!(context, "listing devices"),
            Err(other) => panic!("unexpected error {other}"),
            Ok(()) => panic!("a device named {name} should not exist"),
        }
    }
}

#[test]
fn opening_the_default_device_works_or_fails_cleanly() {
    // With hardware this starts (and on drop stops) a real stream; without, it is an error.
    match CaptureDevice::open(None) {
        Ok((device, capture)) => {
            assert!(capture.rate > 0 && capture.channels > 0);
            drop(device);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    match PlaybackDevice::open(None) {
        Ok((device, playback)) => {
            assert!(playback.rate > 0 && playback.channels > 0);
            drop(device);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

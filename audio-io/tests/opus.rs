//! Opus round trips of a speech-like signal and packet-loss concealment by sequence number.

mod common;

use common::{best_lag, snr_db, speech_like};
use parley_audio_io::constants::frame_samples;
use parley_audio_io::{AudioError, OpusDecoder, OpusEncoder};

fn encode_all(rate: u32, signal: &[f32]) -> (Vec<Vec<u8>>, usize) {
    let mut enc = OpusEncoder::new(rate).unwrap();
    let lookahead = enc.lookahead().unwrap();
    let packets = signal
        .chunks_exact(enc.frame_samples())
        .map(|f| enc.encode_frame(f).unwrap())
        .collect();
    (packets, lookahead)
}

fn round_trip_snr(rate: u32) {
    let signal = speech_like(rate, 2.0);
    let (packets, lookahead) = encode_all(rate, &signal);
    let mut dec = OpusDecoder::new(rate).unwrap();
    let mut out = Vec::new();
    for (seq, p) in packets.iter().enumerate() {
        let outcome = dec.decode(seq as u32, p, &mut out).unwrap();
        assert_eq!(outcome.concealed_frames, 0);
        assert_eq!(outcome.decoded_samples, frame_samples(rate));
    }
    assert_eq!(out.len(), packets.len() * frame_samples(rate));
    // The codec delays the signal by its look-ahead; find the delay by cross-correlation and
    // check it is the one the encoder reports.
    let lag = best_lag(&signal[..signal.len() / 2], &out, 2 * lookahead);
    assert!(
        lag.abs_diff(lookahead) <= 4,
        "lag {lag}, encoder look-ahead {lookahead}"
    );
    let skip = rate as usize / 10; // let the codec settle
    let n = out.len() - lag - skip;
    let snr = snr_db(&signal[skip..skip + n], &out[skip + lag..skip + lag + n]);
    assert!(snr > 15.0, "{rate} Hz: SNR {snr:.1} dB");
}

#[test]
fn speech_round_trip_at_24k_has_snr_above_15_db() {
    round_trip_snr(24_000);
}

#[test]
fn speech_round_trip_at_48k_has_snr_above_15_db() {
    round_trip_snr(48_000);
}

#[test]
fn missing_packets_are_concealed_and_lengths_stay_right() {
    let rate = 24_000;
    let frame = frame_samples(rate);
    let signal = speech_like(rate, 1.0);
    let (packets, _) = encode_all(rate, &signal);
    let mut dec = OpusDecoder::new(rate).unwrap();
    let mut out = Vec::new();
    // Lost inside voiced stretches (the test signal's syllables are frames 0-6, 12-18, 25-31).
    let lost = [3usize, 14, 15, 16];
    for (seq, p) in packets.iter().enumerate() {
        if lost.contains(&seq) {
            continue;
        }
        let before = out.len();
        let outcome = dec.decode(seq as u32, p, &mut out).unwrap();
        let expected_concealed = match seq {
            4 => 1,
            17 => 3,
            _ => 0,
        };
        assert_eq!(outcome.concealed_frames, expected_concealed, "seq {seq}");
        assert_eq!(
            out.len() - before,
            (1 + expected_concealed as usize) * frame
        );
    }
    assert_eq!(out.len(), packets.len() * frame, "frames x 20 ms");
    // Concealment continues the voice rather than inserting silence.
    let concealed = &out[3 * frame..4 * frame];
    assert!(
        parley_audio_io::pcm::rms(concealed) > 0.005,
        "PLC produced silence"
    );
}

#[test]
fn late_duplicate_and_explicitly_lost_packets() {
    let rate = 48_000;
    let frame = frame_samples(rate);
    let (packets, _) = encode_all(rate, &speech_like(rate, 0.5));
    let mut dec = OpusDecoder::new(rate).unwrap();
    let mut out = Vec::new();
    for seq in 0..5 {
        dec.decode(seq, &packets[seq as usize], &mut out).unwrap();
    }
    // A duplicate and a late packet are dropped without output.
    let len = out.len();
    assert!(dec.decode(4, &packets[4], &mut out).unwrap().dropped);
    assert!(dec.decode(2, &packets[2], &mut out).unwrap().dropped);
    assert_eq!(out.len(), len);
    // Packet 5 is known lost: conceal it explicitly; packet 6 then has no gap.
    dec.decode_lost(&mut out).unwrap();
    assert_eq!(out.len(), len + frame);
    let outcome = dec.decode(6, &packets[6], &mut out).unwrap();
    assert_eq!(outcome.concealed_frames, 0);
    assert_eq!(out.len(), len + 2 * frame);
    // An empty packet counts as lost and is concealed in place.
    let outcome = dec.decode(7, &[], &mut out).unwrap();
    assert_eq!((outcome.concealed_frames, out.len()), (1, len + 3 * frame));
}

#[test]
fn huge_gaps_reset_instead_of_concealing_without_bound() {
    let rate = 24_000;
    let (packets, _) = encode_all(rate, &speech_like(rate, 0.2));
    let mut dec = OpusDecoder::new(rate).unwrap();
    let mut out = Vec::new();
    dec.decode(0, &packets[0], &mut out).unwrap();
    let outcome = dec.decode(1_000_000, &packets[1], &mut out).unwrap();
    assert!(outcome.reset);
    assert_eq!(outcome.concealed_frames, 0);
    assert_eq!(out.len(), 2 * frame_samples(rate));
    // Up to the bound, a gap is concealed in full.
    let outcome = dec.decode(1_000_051, &packets[2], &mut out).unwrap();
    assert_eq!(outcome.concealed_frames, 50);
    // Sequence numbers wrap: u32::MAX -> 0 is the next packet, not a huge gap backwards.
    let mut dec = OpusDecoder::new(rate).unwrap();
    dec.decode(u32::MAX, &packets[0], &mut out).unwrap();
    let outcome = dec.decode(0, &packets[1], &mut out).unwrap();
    assert!(!outcome.dropped && !outcome.reset && outcome.concealed_frames == 0);
}

#[test]
fn bad_input_gives_errors() {
    assert!(matches!(
        OpusEncoder::new(16_000),
        Err(AudioError::UnsupportedRate { rate: 16_000, .. })
    ));
    assert!(matches!(
        OpusDecoder::new(44_100),
        Err(AudioError::UnsupportedRate { rate: 44_100, .. })
    ));
    let mut enc = OpusEncoder::new(24_000).unwrap();
    match enc.encode_frame(&[0.0; 479]) {
        Err(AudioError::OpusFrameLength {
            expected: 480,
            got: 479,
        }) => {}
        other => panic!("expected a frame length error, got {other:?}"),
    }
    // A corrupt packet is an error; the packet is then concealed when the next good one comes.
    let (packets, _) = encode_all(24_000, &speech_like(24_000, 0.2));
    let mut dec = OpusDecoder::new(24_000).unwrap();
    let mut out = Vec::new();
    dec.decode(0, &packets[0], &mut out).unwrap();
    assert!(dec.decode(1, &[0xff, 0xff, 0xff], &mut out).is_err());
    assert_eq!(out.len(), 480);
    let outcome = dec.decode(2, &packets[2], &mut out).unwrap();
    assert_eq!(outcome.concealed_frames, 1);
    assert_eq!(out.len(), 3 * 480);
}

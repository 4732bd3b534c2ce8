//! hibari G2P against the reference package's own output:
//! - `assets/goldens/hibari_g2p.json` (tools/reference/hibari_goldens.py): normalized text,
//!   phoneme strings, ids and model chunks for 18 texts, and the OOV net's raw outputs;
//! - `assets/goldens/hibari_g2p_cases.json` (tools/reference/hibari_g2p_cases.py): ~170 sentences
//!   covering numbers, dates, money, units, abbreviations, contractions, punctuation, made-up and
//!   capitalized words; sentence splitting; 400-code-point chunking.
//!
//! Needs the installed hibari-tts model (`parley models fetch`); fails with that hint otherwise.

use std::path::PathBuf;
use std::sync::LazyLock;

use parley_talker::hibari::g2p::{G2p, G2pError, Vocab, chunk_phonemes, split_sentences};
use serde_json::Value;

fn model_dir() -> PathBuf {
    let models = parley_models::default_models_dir();
    match parley_models::installed_model_dir(&models, parley_models::catalog::HIBARI) {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    }
}

static G2P: LazyLock<G2p> = LazyLock::new(|| match G2p::load(&model_dir()) {
    Ok(g) => g,
    Err(e) => panic!("loading the G2P: {e}"),
});

fn golden(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/goldens")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// Text → model chunks exactly as `Hibari.phonemize` does it.
fn model_chunks(g2p: &G2p, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for sentence in split_sentences(text) {
        out.extend(chunk_phonemes(&g2p.phonemize(&sentence).unwrap()));
    }
    out
}

#[test]
fn golden_texts_match_exactly() {
    let g = golden("hibari_g2p.json");
    let g2p = &*G2P;
    let texts = g["texts"].as_array().unwrap();
    assert_eq!(texts.len(), 18);
    for t in texts {
        let text = t["text"].as_str().unwrap();
        let sentences: Vec<String> = t["sentences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["sentence"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(split_sentences(text), sentences, "sentences of {text:?}");
        for s in t["sentences"].as_array().unwrap() {
            let sentence = s["sentence"].as_str().unwrap();
            let normalized = g2p.normalize(sentence).unwrap();
            assert_eq!(
                normalized,
                s["normalized"].as_str().unwrap(),
                "normalize({sentence:?})"
            );
            let ps = g2p.phonemize(sentence).unwrap();
            assert_eq!(ps, s["phonemes"].as_str().unwrap(), "G2P({sentence:?})");
            assert_eq!(g2p.vocab().ids(&ps), ints(&s["ids"]), "ids of {sentence:?}");
        }
        assert_eq!(
            model_chunks(g2p, text),
            strs(&t["model_chunks"]),
            "chunks of {text:?}"
        );
    }
}

#[test]
fn golden_tokens_match_exactly() {
    let g = golden("hibari_g2p.json");
    let g2p = &*G2P;
    for t in g["texts"].as_array().unwrap() {
        for s in t["sentences"].as_array().unwrap() {
            let normalized = s["normalized"].as_str().unwrap();
            let tokens = g2p
                .phonemize_tokens(g2p.tokenize(normalized).unwrap())
                .unwrap();
            let got: Vec<(String, String, Option<String>, String)> = tokens
                .into_iter()
                .map(|tk| (tk.text, tk.tag, tk.phonemes, tk.whitespace))
                .collect();
            let want: Vec<(String, String, Option<String>, String)> = s["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| {
                    (
                        x[0].as_str().unwrap().to_string(),
                        x[1].as_str().unwrap().to_string(),
                        x[2].as_str().map(str::to_string),
                        x[3].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            assert_eq!(got, want, "tokens of {normalized:?}");
        }
    }
}

#[test]
fn golden_oov_net_matches_exactly() {
    let g = golden("hibari_g2p.json");
    let oov = G2P.oov();
    for w in g["oov"].as_array().unwrap() {
        let word = w["word"].as_str().unwrap();
        let chars: Vec<i64> = oov.char_ids(word).iter().map(|&i| i as i64).collect();
        assert_eq!(chars, ints(&w["char_ids"]), "char ids of {word}");
        let ids: Vec<u32> = chars.iter().map(|&i| i as u32).collect();
        let net: Vec<i64> = oov
            .net_ids(&ids)
            .unwrap()
            .iter()
            .map(|&i| i as i64)
            .collect();
        assert_eq!(net, ints(&w["net_ids"]), "net ids of {word}");
        assert_eq!(
            oov.phonemize(word).unwrap().as_deref(),
            w["phonemes"].as_str(),
            "OOV phonemes of {word}"
        );
    }
}

/// Cases known not to match yet, with the reason. Every other case must match exactly, and each
/// listed case is still checked to fail (so the list can't go stale silently).
const KNOWN_MISMATCHES: &[(&str, &str)] = &[];

#[test]
fn broad_cases_match_exactly() {
    let g = golden("hibari_g2p_cases.json");
    let g2p = &*G2P;
    let cases = g["cases"].as_array().unwrap();
    assert!(cases.len() >= 150);
    let mut failures = Vec::new();
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want = c["phonemes"].as_str().unwrap();
        let got = g2p.phonemize(text).unwrap();
        let allowed = KNOWN_MISMATCHES.iter().any(|(t, _)| *t == text);
        if allowed {
            assert_ne!(
                got, want,
                "{text:?} matches now: remove it from KNOWN_MISMATCHES"
            );
        } else if got != want {
            failures.push(format!("{text:?}\n   got  {got:?}\n   want {want:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn sentence_split_matches() {
    let g = golden("hibari_g2p_cases.json");
    for c in g["split_sentences"].as_array().unwrap() {
        let text = c["text"].as_str().unwrap();
        assert_eq!(split_sentences(text), strs(&c["sentences"]), "{text:?}");
    }
    assert!(split_sentences("").is_empty());
    assert!(split_sentences(" \n\n ").is_empty());
}

#[test]
fn long_sentences_are_chunked_at_clauses() {
    let g = golden("hibari_g2p_cases.json");
    let g2p = &*G2P;
    for c in g["chunks"].as_array().unwrap() {
        let text = c["text"].as_str().unwrap();
        let chunks = model_chunks(g2p, text);
        assert_eq!(chunks, strs(&c["chunks"]), "{text:?}");
        assert!(chunks.iter().all(|c| c.chars().count() <= 400));
    }
    assert!(chunk_phonemes("").is_empty());
}

#[test]
fn ids_have_pads_and_drop_unknown_characters() {
    let vocab = Vocab::load(&model_dir()).unwrap();
    assert_eq!(vocab.ids(""), vec![0, 0]);
    // "h" 50, "ə" 83, unknown "#" and "7" dropped, " " 16.
    assert_eq!(vocab.ids("h#ə7 "), vec![0, 50, 83, 16, 0]);
}

#[test]
fn missing_data_file_names_the_fix() {
    let dir = std::env::temp_dir().join(format!("parley-g2p-missing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err = match G2p::load(&dir) {
        Err(e) => e,
        Ok(_) => panic!("loading from an empty directory succeeded"),
    };
    assert!(matches!(err, G2pError::MissingFile { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("normalize.json") && msg.contains("parley models fetch"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sentence_split_titles_are_normalize_json_titles() {
    let table: Value =
        serde_json::from_str(&std::fs::read_to_string(model_dir().join("normalize.json")).unwrap())
            .unwrap();
    let mut keys: Vec<&str> = table["titles"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut ours = parley_talker::hibari::g2p::sentences::TITLES.to_vec();
    keys.sort_unstable();
    ours.sort_unstable();
    assert_eq!(ours, keys);
}

#[test]
fn hostile_input_gives_no_panic() {
    let g2p = &*G2P;
    for text in [
        "",
        "   ",
        "9999999999999999999999999999999999999999999 is big",
        "\u{0}\u{1c}\u{301}'''---...",
        "ǅemal ßtraße İstanbul ﬁne",
        "١٢٣ ² ½ ⑤",
        "[link](not/phonemes) [x](/y/)",
    ] {
        let _ = g2p.phonemize(text).unwrap();
    }
}

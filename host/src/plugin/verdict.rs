//! What detection concluded: each decoder's confidence that it reads an
//! archive, and the decoder `msb load` picks from them, or why none.
//! `load::verdicts` asks the decoders; `msb load` and `msb plugin detect`
//! read the same [`Choice`].

use super::registry::Registered;

/// One decoder's answer: 0 = not mine … 100 = certainly mine.
#[derive(Clone, Copy)]
pub struct Verdict<'a> {
    /// The decoder.
    pub decoder: &'a Registered,
    /// Its confidence (a decoder that failed to answer scores 0).
    pub score: u8,
}

/// The answers for one archive, highest confidence first, then by name.
pub struct Verdicts<'a> {
    verdicts: Vec<Verdict<'a>>,
    looks_like: String,
}

/// What `msb load` without `--plugin` does with the archive.
pub enum Choice<'a> {
    /// Decodes it with the one enabled decoder of the highest confidence.
    Winner(Verdict<'a>),
    /// Refuses it: these enabled decoders tie at the highest confidence.
    Tie(Vec<Verdict<'a>>),
    /// Refuses it: no enabled decoder claims it, these disabled ones do
    /// (best first).
    OnlyDisabled(Vec<Verdict<'a>>),
    /// Refuses it: no decoder asked claims it.
    Nothing,
}

impl<'a> Verdicts<'a> {
    /// `verdicts` on an archive that `looks_like` (a short description, for
    /// when nothing claims it).
    pub fn new(verdicts: Vec<Verdict<'a>>, looks_like: String) -> Verdicts<'a> {
        let mut v = Verdicts { verdicts, looks_like };
        v.sort();
        v
    }

    /// Adds the answers of more decoders.
    pub fn extend(&mut self, more: Vec<Verdict<'a>>) {
        self.verdicts.extend(more);
        self.sort();
    }

    fn sort(&mut self) {
        self.verdicts.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.decoder.name().cmp(b.decoder.name())));
    }

    /// Every answer, highest confidence first.
    pub fn all(&self) -> &[Verdict<'a>] {
        &self.verdicts
    }

    /// What the archive looks like, for when no decoder claims it.
    pub fn looks_like(&self) -> &str {
        &self.looks_like
    }

    /// The decoder `msb load` picks: the enabled one with the highest
    /// confidence above 0; or why there is none.
    pub fn choice(&self) -> Choice<'a> {
        let enabled = || self.verdicts.iter().filter(|v| v.decoder.enabled());
        let best = enabled().map(|v| v.score).max().unwrap_or(0);
        if best > 0 {
            let mut winners: Vec<Verdict<'a>> = enabled().filter(|v| v.score == best).copied().collect();
            return match winners.len() {
                1 => Choice::Winner(winners.remove(0)),
                _ => Choice::Tie(winners),
            };
        }
        let claimed: Vec<Verdict<'a>> =
            self.verdicts.iter().filter(|v| !v.decoder.enabled() && v.score > 0).copied().collect();
        if claimed.is_empty() { Choice::Nothing } else { Choice::OnlyDisabled(claimed) }
    }
}

/// What to say when only disabled decoders claim an archive: `only
/// docker-save claims it, with confidence 95, and it is disabled: msb plugin
/// enable docker-save, or --plugin docker-save`.
pub fn only_disabled(claimed: &[Verdict]) -> String {
    let list = |items: Vec<String>| match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => items.concat(),
    };
    let names = list(claimed.iter().map(|v| v.decoder.name().to_string()).collect());
    let scores = list(claimed.iter().map(|v| v.score.to_string()).collect());
    let best = claimed.first().map_or("NAME", |v| v.decoder.name());
    let (claims, they) = if claimed.len() == 1 { ("claims", "it is") } else { ("claim", "they are") };
    format!(
        "only {names} {claims} it, with confidence {scores}, and {they} disabled: \
         msb plugin enable {best}, or --plugin {best}"
    )
}

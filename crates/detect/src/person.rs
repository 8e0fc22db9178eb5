//! The person-name recognizer: name lists (en, es, zh), capitalisation, titles and a guard
//! against words that are names only sometimes ("May", "Will", "Rosa", "高兴").
//!
//! Latin-script names are read as runs of capitalised words; Chinese names as a surname from
//! the list followed by one or two characters common in given names. The module never
//! allocates per word: lists are static and words are compared as slices of the text.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::entity::Entity;
use crate::finding::{Candidate, Validation};

const RECOGNIZER: &str = "PersonRecognizer";

const GIVEN: u8 = 1;
const SURNAME: u8 = 2;
const GUARD: u8 = 4;
const TITLE: u8 = 8;
const STOP: u8 = 16;

/// Titles and honorifics written before a name; the title is not part of the finding.
const TITLES: &[&str] = &[
    "Mr",
    "Mrs",
    "Ms",
    "Miss",
    "Mx",
    "Dr",
    "Dra",
    "Prof",
    "Sir",
    "Dame",
    "Lady",
    "Lord",
    "Sr",
    "Sra",
    "Srta",
    "Dña",
    "Dª",
    "D",
    "Don",
    "Doña",
    "Señor",
    "Señora",
    "Señorita",
    "Mister",
];

/// Capitalised words that start sentences or name things other than people. A run of
/// capitalised words is split at them.
const STOP_WORDS: &[&str] = &[
    "The",
    "A",
    "An",
    "I",
    "In",
    "On",
    "At",
    "To",
    "For",
    "From",
    "With",
    "By",
    "Of",
    "And",
    "But",
    "Or",
    "If",
    "When",
    "Where",
    "What",
    "Who",
    "Why",
    "How",
    "This",
    "That",
    "These",
    "Those",
    "My",
    "Your",
    "His",
    "Her",
    "Our",
    "Their",
    "We",
    "You",
    "He",
    "She",
    "It",
    "They",
    "Dear",
    "Hello",
    "Hi",
    "Thanks",
    "Thank",
    "Please",
    "Yes",
    "No",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "January",
    "February",
    "March",
    "July",
    "September",
    "October",
    "November",
    "December",
    "Street",
    "Avenue",
    "Road",
    "Lane",
    "Drive",
    "Court",
    "Place",
    "Square",
    "Inc",
    "Ltd",
    "Bank",
    "University",
    "Hospital",
    "Company",
    "Team",
    "Call",
    "Contact",
    "Send",
    "Email",
    "Phone",
    "Card",
    "Visit",
    "Meet",
    "Ask",
    "Let",
    "Our",
    "All",
    "Any",
    "Some",
    "Each",
    "Every",
    "Both",
    "Not",
    "Today",
    "Tomorrow",
    "Yesterday",
    "After",
    "Before",
    "During",
    "Since",
    "Until",
    "Mrs",
    "Customer",
    "Patient",
    "Name",
    "Address",
    "Date",
    "Account",
    "Order",
    "Invoice",
    "Ticket",
    "Report",
    "El",
    "La",
    "Los",
    "Las",
    "Un",
    "Una",
    "En",
    "Con",
    "Por",
    "Para",
    "De",
    "Del",
    "Al",
    "Hola",
    "Gracias",
    "Buenos",
    "Buenas",
    "Querido",
    "Querida",
    "Estimado",
    "Estimada",
    "Calle",
    "Avenida",
    "Plaza",
    "Paseo",
    "Lunes",
    "Martes",
    "Miércoles",
    "Jueves",
    "Viernes",
    "Sábado",
    "Mi",
    "Su",
    "Tu",
    "Nuestro",
    "Nuestra",
    "Este",
    "Esta",
    "Ese",
    "Esa",
    "Si",
    "Sí",
    "Yo",
    "Él",
    "Ella",
    "Usted",
    "Ustedes",
    "Cuando",
    "Donde",
    "Como",
    "Qué",
    "Que",
    "Y",
    "O",
    "Pero",
    "Según",
    "Desde",
    "Hasta",
    "Entre",
    "Sobre",
    "Llame",
    "Llamar",
    "Envíe",
    "Envie",
    "Banco",
    "Universidad",
    "Cliente",
    "Paciente",
    "Nombre",
    "Dirección",
    "Fecha",
    "Cuenta",
    "Pedido",
    "Factura",
    "Tarjeta",
    "Teléfono",
    "Correo",
    "Hoy",
    "Mañana",
    "Ayer",
    "Gran",
    "Nuevo",
    "Nueva",
    "New",
    "North",
    "South",
    "East",
    "West",
    "San",
    "Santa",
    "Saint",
    "St",
];

/// Lower-case particles allowed between the parts of a name ("Juan de la Cruz").
const PARTICLES: &[&str] = &[
    "de", "del", "la", "las", "los", "y", "van", "von", "da", "di", "du",
];

/// Two-character Chinese words that start with a surname and continue with a character common
/// in given names, yet are ordinary words.
const ZH_GUARD: &[&str] = &[
    "高兴", "安静", "全国", "文明", "华丽", "江河", "雷雨", "金银", "黄金", "白云", "白雪", "高明",
    "高超", "高峰", "高山", "高级", "安全", "安康", "安宁", "安心", "平安", "成功", "成立", "成熟",
    "成文", "成平", "时光", "时华", "方向", "方便", "常春", "常新", "关心", "关东", "关山", "文化",
    "文字", "文华", "宁静", "宁可", "江山", "江湖", "江南", "海洋", "石林", "林海", "林木", "黄河",
    "黄山", "龙凤", "金华", "金宝", "金山", "金秋", "明天", "明白", "马达", "马虎", "程序", "周末",
    "周一", "周二", "周三", "周四", "周五", "周六", "周日", "周年", "周边", "周到", "单一", "单纯",
    "牛奶", "谢谢", "许可", "许多", "路口", "游泳", "连通", "连续", "华人", "华夏", "钱包", "文明",
    "康乐", "康宁", "温泉", "温和", "温馨", "秦岭", "武汉", "曾经", "夏天", "秋天", "春天", "冬天",
    "成都", "武林", "古老", "古代", "易于", "毛衣", "尚未", "卫生", "管理", "应该", "应用", "向上",
    "景色", "宫殿", "甘心", "左右", "苗条", "简单", "车辆", "全面", "全部", "全新", "齐全", "包括",
    "费用", "解决", "于是", "和平", "和谐", "宁波", "温州", "杭州", "常州", "苏州", "江苏", "江西",
    "海南", "广东", "东方", "西门", "马上", "史上", "黎明", "向东", "杨柳", "王国", "杜鹃", "梅花",
    "兰花", "菊花", "叶子", "石头", "董事", "孟春", "冯河",
];

/// Characters after a Chinese name that say it is a name (先生 "Mr", 女士 "Ms"...), or before it
/// (名叫 "named", 我是 "I am").
const ZH_AFTER: &[&str] = &[
    "先生", "女士", "小姐", "老师", "医生", "教授", "同学", "经理",
];
const ZH_BEFORE: &[&str] = &[
    "名叫",
    "叫",
    "我是",
    "姓名",
    "联系人",
    "客户",
    "患者",
    "用户",
];
/// Characters that end a name read after a strong context word even when the given-name list
/// does not know the characters before them.
const ZH_STOP: &str = "的是在和与了先女小老手电身护住从说等及或也都就还已将被把给向对为";

/// FxHash (as in rustc): the keys are short words, so SipHash's setup dominates a lookup.
#[derive(Default, Clone, Copy)]
struct WordHasher(u64);

impl std::hash::Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write(&[i]);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type WordMap = HashMap<&'static str, u8, std::hash::BuildHasherDefault<WordHasher>>;

/// A set of characters: a bitmap over the CJK unified ideographs, a sorted list for the rest.
#[derive(Default)]
struct CharSet {
    bits: Vec<u64>,
    other: Vec<char>,
}

const CJK_FIRST: u32 = 0x4E00;
const CJK_LAST: u32 = 0x9FFF;

impl CharSet {
    fn new(chars: impl IntoIterator<Item = char>) -> CharSet {
        let mut set = CharSet {
            bits: vec![0; ((CJK_LAST - CJK_FIRST) / 64 + 1) as usize],
            other: Vec::new(),
        };
        for c in chars {
            let u = c as u32;
            if (CJK_FIRST..=CJK_LAST).contains(&u) {
                let k = (u - CJK_FIRST) as usize;
                set.bits[k / 64] |= 1 << (k % 64);
            } else {
                set.other.push(c);
            }
        }
        set.other.sort_unstable();
        set.other.dedup();
        set
    }

    fn contains(&self, c: char) -> bool {
        let u = c as u32;
        if (CJK_FIRST..=CJK_LAST).contains(&u) {
            let k = (u - CJK_FIRST) as usize;
            self.bits[k / 64] & (1 << (k % 64)) != 0
        } else {
            self.other.binary_search(&c).is_ok()
        }
    }
}

struct Lists {
    latin: WordMap,
    zh_single_set: CharSet,
    zh_compound_first_set: CharSet,
    zh_given_set: CharSet,
    /// [`ZH_GUARD`] as sorted pairs of characters.
    zh_guard: Vec<(char, char)>,
    zh_compound: Vec<&'static str>,
}

fn lines(data: &'static str) -> impl Iterator<Item = &'static str> {
    data.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

static LISTS: LazyLock<Lists> = LazyLock::new(|| {
    let mut latin = WordMap::default();
    let mut add = |words: &mut dyn Iterator<Item = &'static str>, flag: u8| {
        for w in words {
            *latin.entry(w).or_insert(0) |= flag;
        }
    };
    add(&mut lines(include_str!("../data/given_en.txt")), GIVEN);
    add(&mut lines(include_str!("../data/given_es.txt")), GIVEN);
    add(&mut lines(include_str!("../data/surnames_en.txt")), SURNAME);
    add(&mut lines(include_str!("../data/surnames_es.txt")), SURNAME);
    add(&mut lines(include_str!("../data/guard.txt")), GUARD);
    add(&mut TITLES.iter().copied(), TITLE);
    add(&mut STOP_WORDS.iter().copied(), STOP);
    let mut zh_single = Vec::new();
    let mut zh_compound = Vec::new();
    for s in lines(include_str!("../data/surnames_zh.txt")) {
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => zh_single.push(c),
            _ => zh_compound.push(s),
        }
    }
    let mut zh_given: Vec<char> = lines(include_str!("../data/given_zh.txt"))
        .filter_map(|l| l.chars().next())
        .collect();
    let mut zh_compound_first: Vec<char> = zh_compound
        .iter()
        .filter_map(|s: &&str| s.chars().next())
        .collect();
    zh_compound_first.sort_unstable();
    zh_compound_first.dedup();
    zh_single.sort_unstable();
    zh_given.sort_unstable();
    zh_given.dedup();
    let mut zh_guard: Vec<(char, char)> = ZH_GUARD
        .iter()
        .filter_map(|w| {
            let mut cs = w.chars();
            match (cs.next(), cs.next(), cs.next()) {
                (Some(a), Some(b), None) => Some((a, b)),
                _ => None,
            }
        })
        .collect();
    zh_guard.sort_unstable();
    zh_guard.dedup();
    Lists {
        latin,
        zh_single_set: CharSet::new(zh_single.iter().copied()),
        zh_compound_first_set: CharSet::new(zh_compound_first.iter().copied()),
        zh_given_set: CharSet::new(zh_given.iter().copied()),
        zh_guard,
        zh_compound,
    }
});

/// Force the lists to load, so that the first scan does not pay for it.
pub(crate) fn warm_up() {
    LazyLock::force(&LISTS);
}

fn is_latin_letter(c: char) -> bool {
    c.is_ascii_alphabetic()
        || (('\u{C0}'..='\u{24F}').contains(&c) && c != '\u{D7}' && c != '\u{F7}')
        || c == 'ª'
}

#[derive(Clone, Copy)]
struct Word {
    start: usize,
    end: usize,
    flags: u8,
    particle: bool,
}

/// Scan `text` for person names and push candidates.
pub(crate) fn scan(text: &str, out: &mut Vec<Candidate>) {
    scan_latin(text, out);
    if !text.is_ascii() {
        scan_cjk(text, out);
    }
}

fn scan_latin(text: &str, out: &mut Vec<Candidate>) {
    let lists = &*LISTS;
    let bytes = text.as_bytes();
    let mut run: Vec<Word> = Vec::with_capacity(8);
    let mut i = 0;
    while i < bytes.len() {
        if run.is_empty() {
            // Only a capital starts a name: jump to the next ASCII capital or lead byte of
            // U+00C0..U+024F; if it falls inside a word, skip that word.
            let Some(k) = bytes[i..]
                .iter()
                .position(|&b| b.is_ascii_uppercase() || (0xC3..=0xC9).contains(&b))
            else {
                break;
            };
            i += k;
            if inside_word(text, i) {
                // (Past at least this character: a lead byte may start a non-letter, "×".)
                let end = word_end(text, i);
                i = if end > i {
                    end
                } else {
                    i + text[i..].chars().next().map_or(1, char::len_utf8)
                };
                continue;
            }
        }
        let b = bytes[i];
        if b < 0x80 && !b.is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        // Lead bytes from 0xCA start characters from U+0280 up: none is a Latin letter.
        if b >= 0xCA {
            i += match b {
                0xF0.. => 4,
                0xE0.. => 3,
                _ => 2,
            };
            continue;
        }
        let (c, w) = if b < 0x80 {
            (b as char, 1)
        } else {
            match text[i..].chars().next() {
                Some(c) => (c, c.len_utf8()),
                None => break,
            }
        };
        if !is_latin_letter(c) {
            i += w;
            continue;
        }
        let start = i;
        let upper = c.is_uppercase();
        i = word_end(text, i + w);
        let word = &text[start..i];
        let joins = |prev: &Word| {
            let gap = &text[prev.end..start];
            gap == " " || (prev.flags & TITLE != 0 && gap == ". ")
        };
        let kind = if upper {
            Some(Word {
                start,
                end: i,
                flags: word_flags(lists, word),
                particle: false,
            })
        } else if word.len() <= 3 && PARTICLES.contains(&word) {
            Some(Word {
                start,
                end: i,
                flags: 0,
                particle: true,
            })
        } else {
            None
        };
        match kind {
            Some(wd) if run.last().is_some_and(joins) => run.push(wd),
            Some(wd) => {
                flush(text, &run, out);
                run.clear();
                if !wd.particle {
                    run.push(wd);
                }
            }
            None => {
                flush(text, &run, out);
                run.clear();
            }
        }
    }
    flush(text, &run, out);
}

/// The end of the Latin word that goes on at byte `i`: letters, and an apostrophe or hyphen
/// before a capital (O'Brien, García-Pérez, Jean-Luc).
fn word_end(text: &str, mut i: usize) -> usize {
    let bytes = text.as_bytes();
    while i < bytes.len() {
        if bytes[i].is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        if bytes[i] < 0x80 && !matches!(bytes[i], b'\'' | b'-') {
            break;
        }
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        if is_latin_letter(c) {
            i += c.len_utf8();
            continue;
        }
        if matches!(c, '\'' | '’' | '-') {
            let next = text[i + c.len_utf8()..].chars().next();
            if next.is_some_and(|n| n.is_uppercase() && is_latin_letter(n)) {
                i += c.len_utf8();
                continue;
            }
        }
        break;
    }
    i
}

/// Whether byte `i` (a character boundary) is inside a Latin word rather than at its start:
/// a letter before it, or an apostrophe or hyphen after a letter.
fn inside_word(text: &str, i: usize) -> bool {
    let mut before = text[..i].chars().rev();
    match before.next() {
        Some(c) if is_latin_letter(c) => true,
        Some('\'' | '’' | '-') => before.next().is_some_and(is_latin_letter),
        _ => false,
    }
}

fn word_flags(lists: &Lists, word: &str) -> u8 {
    if let Some(&f) = lists.latin.get(word) {
        return f;
    }
    // Hyphenated names: a name when every part is one.
    if word.contains('-') {
        let mut flags = GIVEN | SURNAME;
        for part in word.split('-') {
            flags &= lists.latin.get(part).copied().unwrap_or(0);
        }
        return flags & (GIVEN | SURNAME);
    }
    // A title written with its dot attached is looked up without it elsewhere; all-caps words
    // (acronyms, shouting) are not names.
    if word.len() > 1 && word.bytes().all(|b| b.is_ascii_uppercase()) {
        return STOP;
    }
    0
}

/// Decide which parts of a run of capitalised words are names.
fn flush(text: &str, run: &[Word], out: &mut Vec<Candidate>) {
    let bytes = text.as_bytes();
    let mut title = false;
    let mut i = 0;
    while i < run.len() {
        let w = run[i];
        if w.particle {
            i += 1;
            continue;
        }
        if w.flags & TITLE != 0 && w.flags & GIVEN == 0 {
            // "D" alone is a title only when written "D." (Spanish "don").
            let dotted = bytes.get(w.end) == Some(&b'.');
            title = dotted || &text[w.start..w.end] != "D";
            i += 1;
            continue;
        }
        if w.flags & STOP != 0 {
            title = false;
            i += 1;
            continue;
        }
        let mut j = i + 1;
        let mut caps = 1;
        while j < run.len() && caps < 4 {
            let x = run[j];
            if x.particle {
                // Particles count only when a capitalised name part follows them.
                let next = run[j..].iter().position(|w| !w.particle).map(|p| j + p);
                match next {
                    Some(k) if run[k].flags & STOP == 0 => {
                        j = k;
                        continue;
                    }
                    _ => break,
                }
            }
            if x.flags & (STOP | TITLE) != 0 && x.flags & (GIVEN | SURNAME) == 0 {
                break;
            }
            caps += 1;
            j += 1;
        }
        while j > i + 1 && run[j - 1].particle {
            j -= 1;
        }
        // At most four capitalised parts (see the loop above).
        let mut parts = [0u8; 4];
        let mut n = 0;
        for w in run[i..j].iter().filter(|w| !w.particle) {
            if n < parts.len() {
                parts[n] = w.flags;
            }
            n += 1;
        }
        if let Some((score, pattern)) = score_name(&parts[..n.min(4)], title) {
            let range = (run[i].start, run[j - 1].end);
            out.push(Candidate::built_in(
                Entity::Person,
                range,
                score,
                RECOGNIZER,
                pattern,
                Some(Validation::WordList),
            ));
        }
        title = false;
        i = j;
    }
}

fn score_name(parts: &[u8], title: bool) -> Option<(f32, &'static str)> {
    let first = *parts.first()?;
    let name = |f: u8| f & (GIVEN | SURNAME) != 0;
    if title {
        return Some((0.85, "title + name"));
    }
    let given = first & GIVEN != 0;
    let guard = first & GUARD != 0;
    if parts.len() == 1 {
        return match () {
            _ if given && !guard => Some((0.6, "given name")),
            _ if given || first & SURNAME != 0 => Some((0.25, "name word")),
            _ => None,
        };
    }
    let second = parts[1];
    let rest_named = parts[1..].iter().any(|&f| name(f));
    match () {
        _ if given && !guard && rest_named => Some((0.85, "given + surname")),
        _ if given && !guard => Some((0.7, "given + capitalised")),
        _ if given && rest_named => Some((0.8, "given + surname")),
        _ if first & SURNAME != 0 && second & SURNAME != 0 => Some((0.6, "two surnames")),
        _ if first & GUARD == 0 && first == 0 && second & SURNAME != 0 => {
            Some((0.55, "capitalised + surname"))
        }
        // Unknown capitalised words ("Jolene Okafor"): too weak alone, a context word such as
        // "name" or "call" lifts them over the default threshold.
        _ if parts.iter().all(|&f| f & (GUARD | STOP) == 0) && parts.len() <= 3 => {
            Some((0.3, "capitalised words"))
        }
        _ => None,
    }
}

fn is_cjk(c: char) -> bool {
    ('\u{4E00}'..='\u{9FFF}').contains(&c)
}

/// Whether the two characters are a word of [`ZH_GUARD`].
fn zh_guard(lists: &Lists, a: char, b: char) -> bool {
    lists.zh_guard.binary_search(&(a, b)).is_ok()
}

/// Whether `s` starts with a word of [`ZH_GUARD`].
fn zh_guard_head(lists: &Lists, s: &str) -> bool {
    let mut cs = s.chars();
    match (cs.next(), cs.next()) {
        (Some(a), Some(b)) => zh_guard(lists, a, b),
        _ => false,
    }
}

fn scan_cjk(text: &str, out: &mut Vec<Candidate>) {
    let lists = &*LISTS;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // CJK unified ideographs are three-byte sequences led by 0xE4..=0xE9: skip ASCII eight
        // bytes at a time.
        if let Some(w) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            if u64::from_le_bytes(word) & 0x8080_8080_8080_8080 == 0 {
                i += 8;
                continue;
            }
        }
        if !(0xE4..=0xE9).contains(&bytes[i]) {
            i += 1;
            continue;
        }
        if !text.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let rest = &text[i..];
        let Some(c) = rest.chars().next() else { break };
        let mut sur_len = 0;
        let compound = if lists.zh_compound_first_set.contains(c) {
            lists.zh_compound.iter().find(|s| rest.starts_with(**s))
        } else {
            None
        };
        if let Some(s) = compound {
            sur_len = s.len();
        } else if lists.zh_single_set.contains(c) {
            sur_len = c.len_utf8();
        }
        if sur_len == 0 {
            i += c.len_utf8();
            continue;
        }
        let before = &text[..i];
        // The surname character may end a word instead of starting a name ("安全可靠").
        if before
            .chars()
            .next_back()
            .is_some_and(|p| zh_guard(lists, p, c))
        {
            i += c.len_utf8();
            continue;
        }
        let strong_before = ZH_BEFORE.iter().any(|w| before.ends_with(w));
        let mut end = i + sur_len;
        let mut given = 0;
        for g in text[end..].chars().take(2) {
            let listed = lists.zh_given_set.contains(g);
            // After "我叫" or "联系人" a name is expected, so unlisted characters are accepted.
            let expected = strong_before && given == 0 && !ZH_STOP.contains(g);
            if is_cjk(g) && (listed || expected) {
                end += g.len_utf8();
                given += 1;
            } else {
                break;
            }
        }
        // Before "先生" or "女士", whatever one or two characters follow the surname. Only the
        // two positions are tried, so that the scan stays linear.
        let ahead = &text[i + sur_len..];
        for n in [1usize, 2] {
            let Some((p, _)) = ahead.char_indices().nth(n) else {
                break;
            };
            if ZH_AFTER.iter().any(|w| ahead[p..].starts_with(w)) {
                let between = &ahead[..p];
                if between.chars().all(|g| is_cjk(g) && !ZH_STOP.contains(g)) {
                    end = i + sur_len + p;
                    given = n;
                }
                break;
            }
        }
        if given == 0 {
            i += c.len_utf8();
            continue;
        }
        let name = &text[i..end];
        let after = &text[end..];
        let strong = strong_before || ZH_AFTER.iter().any(|w| after.starts_with(w));
        if !strong && zh_guard_head(lists, name) {
            i += c.len_utf8();
            continue;
        }
        // A two-character given name whose second character starts a guard word ("张伟明天")
        // is cut back to one character.
        if given == 2 {
            let mut chars = name.char_indices().skip(name.chars().count() - 1);
            if let Some((last_at, _)) = chars.next() {
                let tail = &text[i + last_at..];
                if zh_guard_head(lists, tail) || tail.starts_with('明') {
                    end = i + last_at;
                    given = 1;
                }
            }
        }
        let score = match (sur_len > 3, given, strong) {
            (_, _, true) => 0.85,
            (true, _, _) => 0.75,
            (false, 2, _) => 0.65,
            _ => 0.55,
        };
        out.push(Candidate::built_in(
            Entity::Person,
            (i, end),
            score,
            RECOGNIZER,
            "zh surname + given",
            Some(Validation::WordList),
        ));
        i = end;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<(&str, f32)> {
        let mut out = Vec::new();
        scan(text, &mut out);
        out.iter()
            .map(|c| (&text[c.start..c.end], c.score))
            .collect()
    }

    #[test]
    fn given_and_surname() {
        assert_eq!(
            names("I met John Smith yesterday.")[0],
            ("John Smith", 0.85)
        );
        assert_eq!(
            names("Hola, soy María García López.")[0].0,
            "María García López"
        );
        assert_eq!(names("Mr. Xander Quill called")[0].0, "Xander Quill");
        assert_eq!(names("Sra. Pérez llamó")[0].0, "Pérez");
        assert_eq!(names("Juan de la Cruz vino")[0].0, "Juan de la Cruz");
        assert_eq!(names("Patrick O'Brien")[0].0, "Patrick O'Brien");
    }

    #[test]
    fn capitals_inside_words_and_non_letters_after_letters() {
        // A capital inside a word starts no name; a lead byte of a non-letter (×, ÷, IPA ɐ)
        // right after a letter is stepped over.
        assert_eq!(names("a×b x÷y aɐ iPhone l'Amour x-Ray"), vec![]);
        assert_eq!(names("2×3 then aɐ÷ John Smith came")[0].0, "John Smith");
        assert_eq!(names("café Émile Zola")[0].0, "Émile Zola");
    }

    #[test]
    fn guard_words_need_support() {
        assert!(names("May I come in?").iter().all(|(_, s)| *s < 0.5));
        assert!(names("Will you come?").iter().all(|(_, s)| *s < 0.5));
        assert!(names("Compré una Rosa roja").iter().all(|(_, s)| *s < 0.5));
        assert_eq!(names("Rosa Martínez vino")[0], ("Rosa Martínez", 0.8));
    }

    #[test]
    fn chinese_names() {
        assert_eq!(names("我是张伟，电话13800138000")[0].0, "张伟");
        assert_eq!(names("联系人：欧阳娜娜")[0].0, "欧阳娜娜");
        assert_eq!(names("王芳和李明都来了")[0].0, "王芳");
        assert!(names("他很高兴").is_empty());
        assert!(names("今天是周末").is_empty());
    }
}

//! A deterministic generator of the labelled evaluation corpus (en, es, zh).
//!
//! It is shared by `examples/gen_corpus.rs`, which writes `tests/corpus/eval.jsonl`, and by a
//! test that regenerates the corpus and compares it with the committed file. Values are made
//! here with their own check-digit code, not the detector's, and about one name in six comes
//! from outside the detector's lists, so the scorer measures the detector rather than echoing
//! it. Hard negatives (bad check digits, names that are common words, numbers glued to Chinese
//! text, codes and amounts) are a third of the sentences.

use std::fmt::Write as _;

/// splitmix64: small, fast and the same on every platform.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    pub(crate) fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
    pub(crate) fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// One labelled sentence: text and spans as (entity, char start, char end).
pub(crate) struct Sample {
    pub(crate) lang: &'static str,
    pub(crate) text: String,
    pub(crate) spans: Vec<(&'static str, usize, usize)>,
}

impl Sample {
    pub(crate) fn to_json(&self) -> String {
        let spans: Vec<String> = self
            .spans
            .iter()
            .map(|(e, s, t)| format!(r#"{{"entity":"{e}","start":{s},"end":{t}}}"#))
            .collect();
        format!(
            r#"{{"lang":"{}","text":{},"spans":[{}]}}"#,
            self.lang,
            json_string(&self.text),
            spans.join(",")
        )
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const GIVEN_EN: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Emily",
    "Daniel",
    "Olivia",
    "Matthew",
    "Sophia",
    "Andrew",
    "Hannah",
    "Kevin",
    "Rachel",
    "Brian",
    "Laura",
    "George",
    "Nicole",
    "Edward",
    "Megan",
    // Not in the detector's lists.
    "Xander",
    "Brielle",
    "Thaddeus",
    "Marisela",
    "Oakley",
    "Jolene",
    "Cyrus",
];
const SURNAME_EN: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Jones",
    "Miller",
    "Davis",
    "Wilson",
    "Anderson",
    "Taylor",
    "Thomas",
    "Moore",
    "Jackson",
    "Thompson",
    "Harris",
    "Clark",
    "Lewis",
    "Robinson",
    "Walker",
    "Allen",
    "Wright",
    "Scott",
    "Adams",
    "Nelson",
    "Mitchell",
    "Roberts",
    "Turner",
    "Phillips",
    "Campbell",
    "Parker",
    "Evans",
    "Edwards",
    "Collins",
    "Stewart",
    "Morris",
    "Murphy",
    // Not in the detector's lists.
    "Quill",
    "Ashworth",
    "Pemberton",
    "Kowalczyk",
    "Okafor",
    "Lindqvist",
];
const GIVEN_ES: &[&str] = &[
    "María",
    "José",
    "Antonio",
    "Carmen",
    "Manuel",
    "Ana",
    "Francisco",
    "Laura",
    "David",
    "Isabel",
    "Javier",
    "Lucía",
    "Carlos",
    "Marta",
    "Miguel",
    "Elena",
    "Pablo",
    "Sara",
    "Alejandro",
    "Paula",
    "Sergio",
    "Cristina",
    "Jorge",
    "Raquel",
    "Alberto",
    "Beatriz",
    "Fernando",
    "Nuria",
    "Álvaro",
    "Pilar",
    "Rosa",
    "Jesús",
    // Not in the detector's lists.
    "Eneko",
    "Maialen",
    "Xurxo",
    "Anxela",
    "Iratxe",
];
const SURNAME_ES: &[&str] = &[
    "García",
    "Rodríguez",
    "González",
    "Fernández",
    "López",
    "Martínez",
    "Sánchez",
    "Pérez",
    "Gómez",
    "Martín",
    "Jiménez",
    "Ruiz",
    "Hernández",
    "Díaz",
    "Moreno",
    "Muñoz",
    "Álvarez",
    "Romero",
    "Alonso",
    "Gutiérrez",
    "Navarro",
    "Torres",
    "Domínguez",
    "Vázquez",
    "Ramos",
    "Gil",
    "Ramírez",
    "Serrano",
    "Molina",
    "Ortega",
    // Not in the detector's lists.
    "Urquiza",
    "Goikoetxea",
    "Barreiro",
    "Otxoa",
];
const SURNAME_ZH: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "朱", "胡", "郭", "林",
    "罗", "郑", "梁", "谢", "宋", "唐", "韩", "冯", "邓", "曹", "彭", "曾", "欧阳", "司马", "诸葛",
];
const GIVEN_ZH: &[&str] = &[
    "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟",
    "涛", "超", "霞", "平", "刚", "桂英", "建华", "志强", "晓燕", "子涵", "雨萱", "浩然", "欣怡",
    "俊杰", "梓轩", "佳怡", "宇轩", // Characters the detector does not list.
    "玥", "骞", "翊",
];
const STREETS_EN: &[&str] = &[
    "Baker",
    "Oak",
    "Maple",
    "Elm",
    "Pine",
    "Cedar",
    "Washington",
    "Lake",
    "Hill",
];
const STREET_TYPES_EN: &[&str] = &[
    "Street",
    "Avenue",
    "Road",
    "Lane",
    "Drive",
    "Boulevard",
    "St.",
    "Ave.",
];
const STREETS_ES: &[&str] = &[
    "Calle Mayor",
    "Calle de Alcalá",
    "Avenida de la Constitución",
    "Calle Serrano",
    "Paseo de Gracia",
    "Plaza de España",
    "Calle Gran Vía",
    "Avenida Diagonal",
    "Calle Real",
];
const CITIES_EN: &[&str] = &[
    "London",
    "Paris",
    "Berlin",
    "Chicago",
    "Boston",
    "Toronto",
    "Sydney",
    "Dublin",
    "Seattle",
    "Manchester",
    "Tokyo",
    "San Francisco",
    "New York",
];
const COUNTRIES_EN: &[&str] = &[
    "Spain", "France", "Germany", "Canada", "Mexico", "Ireland", "Japan", "Brazil",
];
const CITIES_ES: &[&str] = &[
    "Madrid",
    "Barcelona",
    "Sevilla",
    "Valencia",
    "Bilbao",
    "Zaragoza",
    "Málaga",
    "Granada",
    "Buenos Aires",
    "Bogotá",
    "Lima",
    "Ciudad de México",
];
const COUNTRIES_ES: &[&str] = &[
    "España",
    "Francia",
    "Alemania",
    "México",
    "Argentina",
    "Colombia",
    "Perú",
    "Chile",
];
const CITIES_ZH: &[&str] = &[
    "北京", "上海", "广州", "深圳", "杭州", "成都", "南京", "武汉", "西安", "重庆",
];
const DISTRICTS_ZH: &[&str] = &[
    "朝阳区",
    "海淀区",
    "浦东新区",
    "天河区",
    "南山区",
    "西湖区",
    "武侯区",
];
const ROADS_ZH: &[&str] = &[
    "建国路",
    "中山路",
    "人民路",
    "解放大道",
    "长安街",
    "南京路",
    "科技路",
];
const MONTHS_EN: &[&str] = &[
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const MONTHS_ES: &[&str] = &[
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.org",
    "correo.es",
    "empresa.com.mx",
    "qq.com",
    "163.com",
];
const BTC: &[&str] = &[
    "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
    "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
    "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
    "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
    "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
    "3FZbgi29cpjq2GjdwV8eyHuJJnkLtktZc5",
];

fn luhn_complete(body: &str) -> String {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

fn card(r: &mut Rng, valid: bool) -> String {
    let (prefix, len) = *r.pick(&[
        ("4", 16),
        ("51", 16),
        ("55", 16),
        ("2221", 16),
        ("34", 15),
        ("37", 15),
        ("6011", 16),
        ("62", 16),
        ("62", 19),
        ("3530", 16),
        ("36", 14),
    ]);
    let body = format!("{prefix}{}", r.digits(len - 1 - prefix.len()));
    let mut number = luhn_complete(&body);
    if !valid {
        let last = number.pop().map_or(0, |c| c as u8 - b'0');
        number.push(char::from(b'0' + (last + 1 + r.below(8) as u8) % 10));
    }
    match (len, r.below(3)) {
        (16, 0) => number
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" "),
        (16, 1) => number
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("-"),
        _ => number,
    }
}

fn iban(r: &mut Rng, valid: bool) -> String {
    let (cc, bban_len) = *r.pick(&[
        ("ES", 20),
        ("DE", 18),
        ("FR", 23),
        ("GB", 18),
        ("IT", 23),
        ("NL", 14),
    ]);
    let bban: String = if cc == "GB" || cc == "NL" {
        let bank: String = (0..4)
            .map(|_| char::from(b'A' + r.below(26) as u8))
            .collect();
        format!("{bank}{}", r.digits(bban_len - 4))
    } else {
        r.digits(bban_len)
    };
    let rearranged = format!("{bban}{cc}00");
    let mut rem: u32 = 0;
    for c in rearranged.bytes() {
        if c.is_ascii_digit() {
            rem = (rem * 10 + u32::from(c - b'0')) % 97;
        } else {
            rem = (rem * 100 + u32::from(c - b'A') + 10) % 97;
        }
    }
    let mut check = 98 - rem;
    if !valid {
        check = (check + 1 + r.below(90) as u32) % 97 + 2;
    }
    let compact = format!("{cc}{check:02}{bban}");
    if r.chance(50) {
        compact
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        compact
    }
}

const LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";

fn dni(r: &mut Rng, valid: bool) -> String {
    let n = 10_000_000 + r.below(89_999_999);
    let mut letter = LETTERS[n % 23];
    if !valid {
        letter = LETTERS[(n + 1 + r.below(21)) % 23];
    }
    format!("{n:08}{}", letter as char)
}

fn nie(r: &mut Rng) -> String {
    let lead = r.below(3);
    let n = r.below(10_000_000);
    let letter = LETTERS[(lead * 10_000_000 + n) % 23];
    format!("{}{n:07}{}", ['X', 'Y', 'Z'][lead], letter as char)
}

fn cn_id(r: &mut Rng, valid: bool) -> String {
    let area = *r.pick(&["110105", "310104", "440305", "330106", "510107", "420102"]);
    let year = 1950 + r.below(55);
    let month = 1 + r.below(12);
    let day = 1 + r.below(28);
    let body = format!("{area}{year}{month:02}{day:02}{}", r.digits(3));
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .bytes()
        .zip(W)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    let mut idx = (sum % 11) as usize;
    if !valid {
        idx = (idx + 1 + r.below(10)) % 11;
    }
    format!("{body}{}", b"10X98765432"[idx] as char)
}

fn ssn(r: &mut Rng) -> String {
    let area = loop {
        let a = 1 + r.below(898);
        if a != 666 {
            break a;
        }
    };
    format!("{area:03}-{:02}-{:04}", 1 + r.below(98), 1 + r.below(9998))
}

fn phone(r: &mut Rng, lang: &str) -> String {
    let d = |r: &mut Rng, n| r.digits(n);
    match lang {
        "en" => {
            let area = format!("{}{}", 2 + r.below(8), d(r, 2));
            let exch = format!("{}{}", 2 + r.below(8), d(r, 2));
            let line = d(r, 4);
            match r.below(4) {
                0 => format!("({area}) {exch}-{line}"),
                1 => format!("{area}-{exch}-{line}"),
                2 => format!("+1 {area} {exch} {line}"),
                _ => format!("{area}.{exch}.{line}"),
            }
        }
        "es" => {
            let first = *r.pick(&["6", "7", "9"]);
            let rest = d(r, 8);
            match r.below(4) {
                0 => format!("{first}{} {} {}", &rest[..2], &rest[2..5], &rest[5..]),
                1 => format!("+34 {first}{rest}"),
                2 => format!("{first}{rest}"),
                _ => format!(
                    "{first}{} {} {} {}",
                    &rest[..1],
                    &rest[1..4],
                    &rest[4..6],
                    &rest[6..]
                ),
            }
        }
        _ => {
            let second = *r.pick(&["3", "5", "7", "8", "9"]);
            let m = format!("1{second}{}", d(r, 9));
            match r.below(5) {
                0 | 1 => m,
                2 => format!("{} {} {}", &m[..3], &m[3..7], &m[7..]),
                3 => format!("+86 {m}"),
                _ => format!("0{}-{}", *r.pick(&["10", "21", "755", "571"]), d(r, 8)),
            }
        }
    }
}

fn date(r: &mut Rng, lang: &str) -> String {
    let y = 1950 + r.below(75);
    let m = 1 + r.below(12);
    let day = 1 + r.below(28);
    match (lang, r.below(3)) {
        ("en", 0) => format!("{} {day}, {y}", MONTHS_EN[m - 1]),
        ("en", 1) => format!("{day} {} {y}", MONTHS_EN[m - 1]),
        ("es", 0) | ("es", 1) => format!("{day} de {} de {y}", MONTHS_ES[m - 1]),
        ("zh", 0) | ("zh", 1) => format!("{y}年{m}月{day}日"),
        (_, 2) if r.chance(50) => format!("{day:02}/{m:02}/{y}"),
        _ => format!("{y}-{m:02}-{day:02}"),
    }
}

fn person(r: &mut Rng, lang: &str) -> String {
    match lang {
        "en" => format!("{} {}", r.pick(GIVEN_EN), r.pick(SURNAME_EN)),
        "es" => {
            if r.chance(50) {
                format!(
                    "{} {} {}",
                    r.pick(GIVEN_ES),
                    r.pick(SURNAME_ES),
                    r.pick(SURNAME_ES)
                )
            } else {
                format!("{} {}", r.pick(GIVEN_ES), r.pick(SURNAME_ES))
            }
        }
        _ => format!("{}{}", r.pick(SURNAME_ZH), r.pick(GIVEN_ZH)),
    }
}

fn email(r: &mut Rng) -> String {
    let local = *r.pick(&[
        "ana.garcia",
        "jsmith",
        "wang.wei",
        "m.lopez88",
        "contact",
        "li_na2020",
        "david.k",
    ]);
    format!("{local}{}@{}", r.below(100), r.pick(DOMAINS))
}

fn address(r: &mut Rng, lang: &str) -> String {
    match lang {
        "en" => format!(
            "{} {} {}",
            1 + r.below(9999),
            r.pick(STREETS_EN),
            r.pick(STREET_TYPES_EN)
        ),
        "es" => format!("{} {}", r.pick(STREETS_ES), 1 + r.below(200)),
        _ => format!(
            "{}市{}{}{}号",
            r.pick(CITIES_ZH),
            r.pick(DISTRICTS_ZH),
            r.pick(ROADS_ZH),
            1 + r.below(300)
        ),
    }
}

fn city(r: &mut Rng, lang: &str) -> String {
    match lang {
        "en" => (*r.pick(CITIES_EN)).to_owned(),
        "es" => (*r.pick(CITIES_ES)).to_owned(),
        _ => (*r.pick(CITIES_ZH)).to_owned(),
    }
}

fn country(r: &mut Rng, lang: &str) -> String {
    match lang {
        "en" => (*r.pick(COUNTRIES_EN)).to_owned(),
        "es" => (*r.pick(COUNTRIES_ES)).to_owned(),
        _ => (*r.pick(&["中国", "美国", "日本", "西班牙", "法国", "德国"])).to_owned(),
    }
}

/// The value of a placeholder and the entity it is labelled with (`None`: a hard negative).
fn fill(r: &mut Rng, lang: &str, key: &str) -> (String, Option<&'static str>) {
    let hex2 = |r: &mut Rng| format!("{:02X}", r.below(256));
    match key {
        "PERSON" => (person(r, lang), Some("PERSON")),
        "GIVEN" => {
            let g = if lang == "es" {
                *r.pick(GIVEN_ES)
            } else {
                *r.pick(GIVEN_EN)
            };
            (g.to_owned(), Some("PERSON"))
        }
        "ESPHONE" => (phone(r, "es"), Some("PHONE_NUMBER")),
        "ESDATE" => {
            let m = *r.pick(MONTHS_ES);
            (format!("{} de {m}", 1 + r.below(28)), Some("DATE_TIME"))
        }
        "EMAIL" => (email(r), Some("EMAIL_ADDRESS")),
        "PHONE" => (phone(r, lang), Some("PHONE_NUMBER")),
        "CARD" => (card(r, true), Some("CREDIT_CARD")),
        "IBAN" => (iban(r, true), Some("IBAN_CODE")),
        "SSN" => (ssn(r), Some("US_SSN")),
        "DNI" => (dni(r, true), Some("ES_NIF")),
        "NIE" => (nie(r), Some("ES_NIE")),
        "CNID" => (cn_id(r, true), Some("CN_RESIDENT_ID")),
        "PASSPORT" => (format!("E{}", r.digits(8)), Some("CN_PASSPORT")),
        "IP" => {
            let ip = if r.chance(70) {
                format!(
                    "{}.{}.{}.{}",
                    1 + r.below(223),
                    r.below(256),
                    r.below(256),
                    1 + r.below(254)
                )
            } else {
                format!("2001:db8:{:x}::{:x}", r.below(65535), 1 + r.below(65535))
            };
            (ip, Some("IP_ADDRESS"))
        }
        "URL" => {
            let url = match r.below(3) {
                0 => format!("https://www.{}/account/{}", r.pick(DOMAINS), r.below(1000)),
                1 => format!("www.{}", r.pick(DOMAINS)),
                _ => format!("http://{}/login?id={}", r.pick(DOMAINS), r.below(100)),
            };
            (url, Some("URL"))
        }
        "DATE" => (date(r, lang), Some("DATE_TIME")),
        "ADDRESS" => (address(r, lang), Some("LOCATION")),
        "ADDRESS_APT" => (
            format!("{}, Apt {}", address(r, "en"), 1 + r.below(40)),
            Some("LOCATION"),
        ),
        "CITY" => (city(r, lang), Some("LOCATION")),
        "COUNTRY" => (country(r, lang), Some("LOCATION")),
        "ZIP" => (
            if lang == "zh" {
                r.digits(6)
            } else {
                format!("{}{}", 1 + r.below(9), r.digits(4))
            },
            Some("LOCATION"),
        ),
        "BTC" => ((*r.pick(BTC)).to_owned(), Some("CRYPTO")),
        "ETH" => (
            format!(
                "0x{:016x}{:016x}{:08x}",
                r.next(),
                r.next(),
                r.next() as u32
            ),
            Some("CRYPTO"),
        ),
        "MAC" => {
            let parts: Vec<String> = (0..6).map(|_| hex2(r)).collect();
            (
                parts.join(if r.chance(50) { ":" } else { "-" }),
                Some("MAC_ADDRESS"),
            )
        }
        // Hard negatives: right shape, wrong check digit, or no personal data at all.
        "BADCARD" => (card(r, false), None),
        "BADIBAN" => (iban(r, false), None),
        "BADDNI" => (dni(r, false), None),
        "BADCNID" => (cn_id(r, false), None),
        "BADSSN" => (
            format!("000-{:02}-{:04}", 1 + r.below(98), r.below(9999)),
            None,
        ),
        "AMOUNT" => (
            format!(
                "{},{:03}.{:02}",
                1 + r.below(99),
                r.below(1000),
                r.below(100)
            ),
            None,
        ),
        "QTY" => (format!("{}", 1 + r.below(500)), None),
        "ORDER" => (format!("{}", 1_000_000 + r.below(8_999_999)), None),
        "TIME" => (format!("{:02}:{:02}", r.below(24), r.below(60)), None),
        "VERSION" => (
            format!("{}.{}.{}", r.below(10), r.below(30), r.below(100)),
            None,
        ),
        _ => (key.to_owned(), None),
    }
}

const EN: &[&str] = &[
    "Please call {PERSON} at {PHONE} before Friday.",
    "My name is {PERSON} and my email is {EMAIL}.",
    "Contact Mr. {PERSON} on {PHONE} or at {EMAIL}.",
    "Dr. {PERSON} saw the patient on {DATE}.",
    "The card {CARD} was charged twice on {DATE}.",
    "Wire the refund to IBAN {IBAN} today.",
    "Her SSN is {SSN} and she was born on {DATE}.",
    "{PERSON} lives at {ADDRESS}, {CITY}.",
    "Ship it to {ADDRESS} in {CITY}, zip code {ZIP}.",
    "Login from IP address {IP} at {TIME} flagged for {PERSON}.",
    "Visit {URL} to reset the password for {EMAIL}.",
    "Send the bitcoin to wallet {BTC} by {DATE}.",
    "The ETH wallet {ETH} belongs to {PERSON}.",
    "Device MAC address {MAC} connected from {IP}.",
    "{PERSON} moved from {CITY} to {COUNTRY} last year.",
    "Ms. {PERSON} works in {COUNTRY} now.",
    "Passport number {PASSPORT} was issued to {PERSON}.",
    "Call me on {PHONE}, thanks, {PERSON}",
    "Payment card: {CARD}. Phone: {PHONE}.",
    "Meeting with {PERSON} and {PERSON} on {DATE} in {CITY}.",
    "Patient {PERSON}, DOB {DATE}, SSN {SSN}.",
    "cc: {PERSON} <{EMAIL}>",
    "Reply to {PERSON} by {DATE} about the invoice.",
    "Servers {IP} and {IP} went down at {TIME}.",
    "Thanks, {GIVEN}",
    "{PERSON}'s new phone number is {PHONE}.",
    "The lease for {ADDRESS_APT} starts {DATE}.",
    "Forwarded by {PERSON} from {CITY}, {COUNTRY}.",
    "We refunded {AMOUNT} to card {CARD} for {PERSON}.",
    "Spanish customer {PERSON} gave DNI {DNI} and phone {ESPHONE}.",
    "{PERSON} ({EMAIL}) asked us to delete account {ORDER}.",
];
const EN_NEG: &[&str] = &[
    "May I help you with order {ORDER}?",
    "Will you grant access to version {VERSION} of the tool?",
    "Order {ORDER} was shipped at {TIME} with {QTY} items.",
    "The test card {BADCARD} must be rejected.",
    "Reference {BADIBAN} is not a valid account.",
    "The total was {AMOUNT} for {QTY} units.",
    "Hope and Faith are virtues, said the sermon in June.",
    "We mark the rose garden with {QTY} stones each May.",
    "Number {BADSSN} is not a valid SSN.",
    "Grant the request and bill the customer for {QTY} hours.",
    "Version {VERSION} fixes the bug reported at {TIME}.",
    "April showers bring May flowers.",
    "Contact Technical Support at {TIME} for help with build {VERSION}.",
    "ISBN 978-3-16-148410-0 is out of print.",
    "Tracking number 1Z999AA10123456784 was delivered.",
    "The date 2023-02-30 does not exist.",
    "In 2019, {QTY}% of users upgraded to version {VERSION}.",
    "The meeting is at {TIME} in room {QTY}.",
    "Microsoft Teams and Google Meet both work.",
    "Mark the form as done and grant the waiver.",
    "Will you sign the form on page {QTY}?",
    "Order #{ORDER}: {QTY} x USB-C cables at {AMOUNT}.",
    "Pat the dog and bill the client for {QTY} hours.",
    "Call Center hours are 9 to 5, Monday to Friday.",
];
const ES: &[&str] = &[
    "Me llamo {PERSON} y mi teléfono es {PHONE}.",
    "El DNI de {PERSON} es {DNI}.",
    "Mi NIE es {NIE} y vivo en {ADDRESS}, {CITY}.",
    "Sr. {PERSON}, su cita es el {DATE}.",
    "Transfiera el importe a la cuenta {IBAN}, por favor.",
    "Escriba a {EMAIL} o llame al {PHONE}.",
    "La tarjeta {CARD} fue rechazada el {DATE}.",
    "Dña. {PERSON} nació el {DATE} en {CITY}.",
    "Envíelo a {ADDRESS}, código postal {ZIP}, {CITY}.",
    "{PERSON} se mudó de {CITY} a {COUNTRY}.",
    "Acceso desde la dirección IP {IP} para {EMAIL}.",
    "Consulte {URL} para más información.",
    "Su pasaporte {PASSPORT} caduca el {DATE}.",
    "Hola {PERSON}, gracias por su correo.",
    "Teléfono móvil: {PHONE}. Correo: {EMAIL}.",
    "La paciente {PERSON}, con DNI {DNI}, vive en {COUNTRY}.",
    "El día {ESDATE} llamó {PERSON} desde {CITY}.",
    "Atentamente, {PERSON}",
    "Paciente: {PERSON}. Fecha de nacimiento: {DATE}. NIE: {NIE}.",
    "{PERSON} y {PERSON} firmaron el contrato en {CITY}.",
    "El cliente con correo {EMAIL} pidió la baja el {DATE}.",
    "Su número de cuenta es {IBAN} y su móvil {PHONE}.",
    "Doña {PERSON} vive en {ADDRESS}.",
];
const ES_NEG: &[&str] = &[
    "Compré una rosa roja y {QTY} claveles.",
    "El pedido {ORDER} llegó a las {TIME}.",
    "La referencia {BADDNI} no es un DNI válido.",
    "El importe total es {AMOUNT} euros.",
    "La tarjeta de prueba {BADCARD} no debe aceptarse.",
    "En mayo hace buen tiempo y la luz dura más.",
    "La versión {VERSION} salió el lunes con {QTY} mejoras.",
    "La cuenta {BADIBAN} no es válida.",
    "Pilar de la economía, el turismo creció un {QTY} por ciento.",
    "La paz y la esperanza guían a la asociación.",
    "El Real Madrid ganó {QTY} a 1 en la Gran Vía del fútbol.",
    "Feliz Navidad y próspero año nuevo.",
    "El Banco Central subió los tipos al {QTY} por ciento.",
    "La Semana Santa empieza en abril este año.",
    "El código de producto es AB-{ORDER} y la versión {VERSION}.",
    "Sol y luz todo el día en la costa.",
    "Mercedes y BMW presentaron {QTY} modelos nuevos.",
];
const ZH: &[&str] = &[
    "我叫{PERSON}，手机号{PHONE}。",
    "{PERSON}的身份证号码是{CNID}。",
    "请联系{PERSON}先生，电话{PHONE}。",
    "{PERSON}女士住在{ADDRESS}。",
    "银行卡号{CARD}已于{DATE}冻结。",
    "请发邮件到{EMAIL}，谢谢。",
    "客户{PERSON}的护照号码是{PASSPORT}。",
    "她出生于{DATE}，现居{CITY}。",
    "登录IP地址{IP}，用户{PERSON}。",
    "收货地址：{ADDRESS}，邮编{ZIP}。",
    "访问{URL}查看订单。",
    "{PERSON}从{CITY}搬到了{COUNTRY}。",
    "我的电话是{PHONE}，邮箱是{EMAIL}。",
    "钱包地址{BTC}收到一笔转账。",
    "联系人{PERSON}，身份证{CNID}，手机{PHONE}。",
    "{PERSON}和{PERSON}去了{CITY}。",
    "患者{PERSON}，出生日期{DATE}，电话{PHONE}。",
    "王先生的邮箱是{EMAIL}。",
    "{PERSON}的银行卡{CARD}被盗刷了。",
    "用户{PERSON}于{DATE}从IP {IP}登录。",
    "{PERSON}在{COUNTRY}工作，住址是{ADDRESS}。",
];
const ZH_NEG: &[&str] = &[
    "今天是周末，他很高兴。",
    "我们马上出发，共有{QTY}个人。",
    "价格是{QTY}元，订单号{ORDER}。",
    "号码{BADCNID}不是有效的身份证号。",
    "第{QTY}期活动在{TIME}开始。",
    "这个方法很简单，安全可靠。",
    "全国各地的温度都在升高。",
    "版本{VERSION}修复了{QTY}个问题。",
    "总金额为{AMOUNT}元。",
    "黄金价格今天上涨了{QTY}点。",
    "王国的历史很长，许多人都知道。",
    "张开双手，高速公路上车很多。",
    "周一开会讨论金融中心的方案。",
    "QQ群号{ORDER}，房间号{QTY}。",
    "林业局今年种了{QTY}棵树。",
    "3月份的销售额是{QTY}万元。",
    "第{QTY}号文件已经发布。",
];

/// Expand a template into a sample.
fn render(r: &mut Rng, lang: &'static str, template: &str) -> Sample {
    let mut text = String::new();
    let mut chars = 0usize;
    let mut spans = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let lit = &rest[..open];
        text.push_str(lit);
        chars += lit.chars().count();
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
        let (value, entity) = fill(r, lang, &rest[open + 1..close]);
        let n = value.chars().count();
        if let Some(e) = entity {
            spans.push((e, chars, chars + n));
        }
        text.push_str(&value);
        chars += n;
        rest = &rest[(close + 1).min(rest.len())..];
    }
    text.push_str(rest);
    Sample { lang, text, spans }
}

/// The whole corpus: `n` sentences, about 40% English, 30% Spanish, 30% Chinese, a third of
/// them hard negatives.
pub(crate) fn generate(n: usize) -> Vec<Sample> {
    let mut r = Rng::new(0x626f_7665_6461);
    (0..n)
        .map(|i| {
            let (lang, pos, neg): (&'static str, &[&str], &[&str]) = match i % 10 {
                0..=3 => ("en", EN, EN_NEG),
                4..=6 => ("es", ES, ES_NEG),
                _ => ("zh", ZH, ZH_NEG),
            };
            let template = if r.chance(30) {
                *r.pick(neg)
            } else {
                *r.pick(pos)
            };
            render(&mut r, lang, template)
        })
        .collect()
}

/// The corpus as JSON lines, as committed in `tests/corpus/eval.jsonl`.
pub(crate) fn jsonl(n: usize) -> String {
    let mut out = String::new();
    for s in generate(n) {
        out.push_str(&s.to_json());
        out.push('\n');
    }
    out
}

/// The number of sentences in the committed corpus.
pub(crate) const SIZE: usize = 2400;

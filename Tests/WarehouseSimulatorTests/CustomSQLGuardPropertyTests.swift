import CDFSyncCore
import Foundation
import Testing
@testable import WarehouseSimulator

/// The read-only guard against the simulator's own SQL reader: whatever the guard accepts, the simulator reads as
/// exactly one SELECT, and the engine's wrappers around it read as the wrapper with that SELECT inside — the user's
/// text never runs as a second statement, never as something other than a SELECT, and never reaches past the
/// parentheses the wrapper puts around it.
///
/// Texts come from the hostile corpus (`Tests/hostile-sql/corpus.json`) and a few runnable queries, mutated at
/// random: fragments that open or close strings, comments, quoted names and parentheses, statement separators,
/// look-alike and invisible characters are inserted, ranges deleted or doubled. Each run checks thousands; a failure
/// prints the seed and the text (`CDFSYNC_GUARD_FUZZ_SEED=<seed>` repeats a run, `CDFSYNC_GUARD_FUZZ_ITERATIONS`
/// sets its length).
@Suite struct CustomSQLGuardPropertyTests {
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let runnable = [
        "SELECT id, email FROM main.crm.customers WHERE id > 1 ORDER BY id LIMIT 5",
        "WITH a AS (SELECT id FROM t) SELECT a.id, u.name FROM a JOIN u ON a.id = u.id",
        "SELECT p.*, c.status FROM people p LEFT JOIN consents c ON c.person_id = p.id -- note",
        "SELECT * FROM (SELECT id, 'x;y' AS s FROM t) AS d WHERE s LIKE '%;%'",
        "SELECT `a``b`, r'\\', \"q\\\"\" AS q FROM t /* c /* n */ */",
        "SELECT 1",
        "select lower(email) as e from main.crm.t where x in ('a', 'b') and y is not null;",
        "SELECT /*+ BROADCAST(c) */ a FROM t -- done \\\n; DROP TABLE x",
        "SELECT count(*) FROM t WHERE updated_at BETWEEN TIMESTAMP '2026-01-01' AND '2026-02-01'",
        "WITH d AS (SELECT * FROM main.crm.people WHERE country = 'DE') SELECT d.id, d.email FROM d ORDER BY 2 DESC",
        "SELECT a.id AS aid, b.id AS bid FROM (SELECT id FROM x) a INNER JOIN (SELECT id FROM y) AS b ON a.id = b.id",
        "SELECT `e``x`.`c;d` FROM `e``x` WHERE `c;d` <> ';' -- ) ;",
        "SELECT id FROM t WHERE note = 'a\\\\' OR note = \"--\" OR note LIKE '/*%'",
        "SELECT\tid\r\nFROM\u{00A0}t\n;",
    ]

    static let fragments = [
        ";", "; DROP TABLE x", "; SELECT 1", "'", "\"", "`", "--", "-- x\\\n", "-- x\n", "/*", "*/", "/*+", "\\", "\n",
        "\r", "\r\n", ")", "(", ") UNION (SELECT 1", ") AS src; DELETE FROM t; --", "r'", "R\"", "${", "\u{FF1B}",
        "\u{037E}", "\u{200B}", "\u{00A0}", "\u{3000}", "\u{202E}", "\u{0415}", "DELETE", "INSERT INTO t ",
        "WITH x AS (SELECT 1) ", "SELECT", "SELECT ", "FROM", " FROM t", " JOIN u ON a = b", " WHERE a = 1", "read_files('x')",
        ":p", "?", "''", "\\'", "``", "e", "1", " ", ",", "*", ".", "AS", " VERSION AS OF 1", "@v1", "/**/", "'a\\\\'",
        "WITH", "(SELECT 2)", "x:y", "*/ ;", "/* /* */", "-- \\", "DESCRIBE HISTORY t", "SHOW TABLES",
    ]

    /// One to three random edits of `text`, on Unicode scalars (so CR LF can be split and joined).
    static func mutate(_ text: String, _ rng: inout SplitMix) -> String {
        var s = Array(text.unicodeScalars)
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            let at = Int.random(in: 0...s.count, using: &rng)
            switch Int.random(in: 0..<10, using: &rng) {
            case 0..<6:
                s.insert(contentsOf: fragments.randomElement(using: &rng)!.unicodeScalars, at: at)
            case 6, 7:
                guard !s.isEmpty else { continue }
                let a = Int.random(in: 0..<s.count, using: &rng)
                s.removeSubrange(a..<min(s.count, a + Int.random(in: 1...6, using: &rng)))
            case 8:
                guard !s.isEmpty else { continue }
                let a = Int.random(in: 0..<s.count, using: &rng)
                let piece = s[a..<min(s.count, a + Int.random(in: 1...12, using: &rng))]
                s.insert(contentsOf: Array(piece), at: at)
            default:
                guard !s.isEmpty else { continue }
                let alphabet = Array("';\"`()-/*\\\n\r ;aZ_0:?$@{}".unicodeScalars)
                s[Int.random(in: 0..<s.count, using: &rng)] = alphabet.randomElement(using: &rng)!
            }
        }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: s)
        return String(out)
    }

    static func lex(_ s: String) -> [Token]? { try? Lexer(s).tokenize() }
    static func pad(_ n: Int) -> String { String(repeating: " ", count: n) }

    /// A guard's verdict as the property sees it: the accepted text (normalised) and the statements built around it,
    /// or nil for a refusal.
    typealias Verdict = (text: String, wrapped: [String])

    /// The real guard and the real builder.
    static func guarded(_ text: String) -> Verdict? {
        guard case .success(let g) = ReadOnlySQLGuard.check(text) else { return nil }
        let page1 = SQL.customWatermarkPage(
            g, columns: nil, cursor: "updated_at", key: "id", upperBound: "2026-01-01T00:00:00Z", after: nil, pageSize: 100)
        let page2 = SQL.customWatermarkPage(
            g, columns: ["id", "updated_at"], cursor: "updated_at", key: "id", conditions: ["`id` IS NOT NULL"],
            upperBound: nil, after: ("2026-01-01T00:00:00Z", "k"), pageSize: 100)
        return (g.text, [page1.sql, page2.sql, SQL.customSnapshot(g, columns: ["id"]), SQL.customTestRun(g, limit: 5).sql])
    }

    /// What is wrong with a guard's verdict on `text`, or nil. Refusing is always safe; an accepted text must be
    /// one SELECT to the simulator, and so must every statement built around it.
    static func violation(_ text: String, _ check: (String) -> Verdict? = guarded) -> String? {
        guard let g = check(text) else { return nil }
        // 1. The text alone: at most one statement, and it is a SELECT.
        if let tokens = lex(text) {
            let segments = tokens.split { $0.isSymbol(";") || $0.kind == .end }
            if segments.count > 1 { return "the simulator reads \(segments.count) statements" }
            if let first = segments.first?.first, !(first.isKeyword("SELECT") || first.isKeyword("WITH")) {
                return "the simulator reads a statement starting with \(first.text)"
            }
        }
        let alone = try? Parser.parse(text)
        if let alone, case .select = alone {} else if alone != nil { return "the simulator parses a non-SELECT: \(alone!)" }
        // The normalised text is the same statement (the same tokens at the same places once its offset is restored).
        guard let first = try? SQLTokenizer.tokenize(text).get().first else { return "accepted text without tokens" }
        let lead = first.utf8Range.lowerBound
        let textBytes = Array(text.utf8), normalBytes = Array(g.text.utf8)
        guard lead + normalBytes.count <= textBytes.count, Array(textBytes[lead..<lead + normalBytes.count]) == normalBytes
        else { return "the normalised text is not the text from its first token" }
        let shifted = pad(lead) + g.text
        if let alone, (try? Parser.parse(shifted)) != alone { return "the normalised text parses differently" }

        // 2. Every wrapper: its tokens are the wrapper's around the text's own, and it parses as the wrapper's
        // SELECT with exactly the text's SELECT inside.
        for w in g.wrapped {
            // prefix + text + suffix, cut by bytes: the prefix ends at the first "FROM (" and a line break.
            let wb = Array(w.utf8), marker = Array("FROM (\n".utf8)
            guard let at = (0...max(0, wb.count - marker.count)).first(where: { Array(wb[$0..<$0 + marker.count]) == marker })
            else { return "wrapper without FROM (" }
            let p = at + marker.count, l = normalBytes.count
            guard p + l <= wb.count, Array(wb[p..<p + l]) == normalBytes else { return "wrapper does not hold the text verbatim" }
            let prefix = String(decoding: wb[..<p], as: UTF8.self), suffix = String(decoding: wb[(p + l)...], as: UTF8.self)
            guard suffix.hasPrefix("\n) AS src") else { return "wrapper suffix changed: \(suffix)" }
            let inner = pad(p) + g.text
            if let tw = lex(w) {
                guard let tp = lex(prefix), let ti = lex(inner), let ts = lex(pad(p + l) + suffix) else {
                    return "the wrapper lexes but the text alone does not: \(w)"
                }
                if tw != Array(tp.dropLast()) + Array(ti.dropLast()) + ts {
                    return "the text's tokens run into the wrapper's: \(w)"
                }
            } else if lex(inner) != nil {
                return "the wrapper does not lex but the text does: \(w)"
            }
            // Within the text, parentheses never close more than it opened, and all it opens close.
            if let ti = lex(inner) {
                var depth = 0
                for t in ti {
                    if t.isSymbol("(") { depth += 1 }
                    if t.isSymbol(")") { depth -= 1 }
                    if depth < 0 { return "the text closes the wrapper's parenthesis: \(w)" }
                }
                if depth != 0 { return "the text leaves a parenthesis open: \(w)" }
            }
            let parsedInner = try? Parser.parse(inner)
            guard let pw = try? Parser.parse(w) else {
                if parsedInner != nil { return "the text parses but its wrapper does not: \(w)" }
                continue
            }
            guard case .select(var outer) = pw, outer.ctes.isEmpty, case .derived(let got, "src", let off)? = outer.from
            else { return "the wrapper parses as something else: \(w)" }
            guard case .select(let expected)? = parsedInner, expected == got else {
                return "the wrapper holds another statement than the text: \(w)"
            }
            // The outer statement is the wrapper's own: the same as around a placeholder of the same length.
            guard l >= 7 else { return "accepted text shorter than any SELECT" }
            let placeholder = "SELECT" + pad(l - 7) + "*"
            guard case .select(var reference)? = try? Parser.parse(prefix + placeholder + suffix),
                case .derived(_, "src", let refOff)? = reference.from, refOff == off
            else { return "placeholder wrapper does not parse" }
            reference.from = .derived(got, alias: "src", offset: off)
            outer.from = .derived(got, alias: "src", offset: off)
            if reference != outer { return "the wrapper's own clauses changed: \(w)" }
        }
        return nil
    }

    static func seeds() -> [String] { runnable + HostileSQLCorpus.texts }

    /// Runs `iterations` mutated texts from `seed`; returns the failures (seed, iteration, text, problem).
    static func fuzz(seed: UInt64, iterations: Int) -> (failures: [String], accepted: Int) {
        var rng = SplitMix(state: seed)
        let base = seeds()
        var failures: [String] = []
        var accepted = 0
        for i in 0..<iterations {
            // Mostly runnable queries, so that many mutated texts are still accepted and reach the simulator.
            var text = Int.random(in: 0..<4, using: &rng) == 0 ? base.randomElement(using: &rng)! : runnable.randomElement(using: &rng)!
            text = mutate(text, &rng)
            if Int.random(in: 0..<4, using: &rng) == 0 { text = mutate(text, &rng) }
            if case .success = ReadOnlySQLGuard.check(text) { accepted += 1 }
            if let problem = violation(text) {
                failures.append("seed \(seed) iteration \(i): \(problem)\n  text: \(text.debugDescription)")
                if failures.count >= 5 { break }
            }
        }
        return (failures, accepted)
    }

    @Test func theCorpusAndRunnableQueriesHoldTheProperty() {
        for text in Self.seeds() {
            #expect(Self.violation(text) == nil, "\(text.debugDescription)")
        }
        // The runnable queries are accepted and read by the simulator: the property is not vacuous for them.
        for text in Self.runnable {
            let g = try? ReadOnlySQLGuard.check(text).get()
            #expect(g != nil, "\(text.debugDescription): \(ReadOnlySQLGuard.check(text))")
            if let g { #expect((try? Parser.parse(SQL.customTestRun(g, limit: 1).sql)) != nil, "\(text)") }
        }
    }

    @Test func mutatedTextsFixedSeed() {
        let iterations = ProcessInfo.processInfo.environment["CDFSYNC_GUARD_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 4000
        let r = Self.fuzz(seed: 0x2026_0326, iterations: iterations)
        #expect(r.failures.isEmpty, "\(r.failures.joined(separator: "\n"))")
        #expect(r.accepted >= iterations / 5, "only \(r.accepted) of \(iterations) mutated texts were accepted")
    }

    @Test func mutatedTextsNewSeedEachRun() {
        let env = ProcessInfo.processInfo.environment
        let seed = env["CDFSYNC_GUARD_FUZZ_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        let iterations = env["CDFSYNC_GUARD_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 4000
        let r = Self.fuzz(seed: seed, iterations: iterations)
        #expect(r.failures.isEmpty, "CDFSYNC_GUARD_FUZZ_SEED=\(seed) reproduces:\n\(r.failures.joined(separator: "\n"))")
        #expect(r.accepted >= iterations / 5, "seed \(seed): only \(r.accepted) of \(iterations) accepted")
    }

    /// The property catches a careless guard: one that accepts any text starting with SELECT and wraps it the same
    /// way. Each of these texts is a violation for it (and refused by the real guard).
    @Test func thePropertyCatchesACarelessGuard() {
        let careless: (String) -> Verdict? = { text in
            guard text.hasPrefix("SELECT") else { return nil }
            return (text, ["SELECT * FROM (\n" + text + "\n) AS src LIMIT :n"])
        }
        for text in [
            "SELECT 1; DROP TABLE x", "SELECT 1) UNION (SELECT 2", "SELECT 1 -- x\\",
            "SELECT * FROM t) AS src ORDER BY 1 --", "SELECT 1 /* a /* b */ */ ) UNION (SELECT 1",
        ] {
            #expect(Self.violation(text, careless) != nil, "\(text.debugDescription)")
            // The real guard refuses each, or (the comment ending in a backslash) accepts it without the comment.
            #expect(Self.violation(text) == nil)
        }
    }
}

/// The texts of `Tests/hostile-sql/corpus.json`.
enum HostileSQLCorpus {
    static let texts: [String] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("hostile-sql/corpus.json")
        guard let data = try? Data(contentsOf: url),
            let doc = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let cases = doc["cases"] as? [[String: Any]]
        else { return [] }
        return cases.compactMap { $0["sql"] as? String }
    }()
}

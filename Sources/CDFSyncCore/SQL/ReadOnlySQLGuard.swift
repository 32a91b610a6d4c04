/// User SQL that `ReadOnlySQLGuard` accepted: one read-only `SELECT` (or `WITH … SELECT`), normalised (surrounding
/// whitespace and comments and a trailing `;` removed). Only the guard makes one, so a query builder that takes a
/// `GuardedSQL` cannot be handed unchecked text.
public struct GuardedSQL: Sendable, Hashable, CustomStringConvertible {
    /// The statement, from its first token to its last (a trailing `;` not included).
    public let text: String

    init(checked text: String) { self.text = text }

    public var description: String { text }
}

/// Why the guard refused a text: the offending token, where it is, what is wrong, and what custom SQL may be.
public struct SQLGuardRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// The token as written (shortened, control and invisible characters shown as `U+XXXX`).
    public var token: String
    /// 1-based line and column (in characters) of the token.
    public var line: Int
    public var column: Int
    /// What is wrong with it, e.g. `DROP is not allowed: custom SQL only reads`.
    public var problem: String

    /// What the guard accepts, said in every refusal.
    public static let allowed =
        "Custom SQL is exactly one SELECT (or WITH … SELECT) that only reads tables and views; the engine adds its own paging and parameters."

    /// One line: `custom SQL refused at line 1, column 10 ('DROP'): DROP … . Custom SQL is …`.
    public var description: String {
        "custom SQL refused at line \(line), column \(column) ('\(token)'): \(problem). \(Self.allowed)"
    }
}

/// The read-only guard for custom SQL a pipeline gives as its source.
///
/// The text is tokenized as Databricks reads it (``SQLTokenizer``: strings, quoted identifiers, nested comments, raw
/// strings, hints), then checked token by token, outside strings, quoted identifiers and comments:
///
/// - exactly one statement: it starts with `SELECT` or `WITH`, a `WITH` list is followed by `SELECT`, and a `;` may
///   only be the last token;
/// - parentheses balance, and no `)` closes one that the text did not open (it would close the engine's wrapper);
/// - no statement keyword that writes or changes state (`INSERT`, `UPDATE`, `DELETE`, `MERGE`, `CREATE`, `ALTER`,
///   `DROP`, `TRUNCATE`, `SET`, `RESET`, `USE`, `CALL`, `COPY`, `OPTIMIZE`, `VACUUM`, `GRANT`, `REVOKE`, `REFRESH`,
///   `CACHE`, `ANALYZE`, `EXECUTE` (IMMEDIATE), `DECLARE`, `INTO`, … — ``forbiddenKeywords``) anywhere;
/// - no function that reads files, streams, secrets or the network, or calls models or other systems
///   (``forbiddenFunctions``, and every `read_…`, `ai_…` and `cloud_files…` function) anywhere; a function in a FROM
///   position (a table-valued function) only from ``tableValuedFunctions``;
/// - no time travel (`VERSION AS OF`, `TIMESTAMP AS OF`, `FOR SYSTEM_TIME …`), no table options (`WITH (…)`), no
///   streaming reads (`STREAM`), no `IDENTIFIER(…)` (a string turned into a name the guard cannot see), no parameter
///   markers (`:name`, `?`: the engine binds its own parameters, and only those);
/// - nowhere, not even inside strings or comments: `${` (Spark substitutes `${…}` variables in the raw text before it
///   parses it) and invisible bidirectional-text controls (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C: they
///   make text display differently from what runs).
///
/// The check is syntactic: it cannot know what a view or a user-defined function does (both run with the
/// connection's rights, which should be read-only).
public enum ReadOnlySQLGuard {
    /// Words that are refused outside strings, quoted identifiers and comments (quote a column of such a name in
    /// backticks), with what they would do.
    public static let forbiddenKeywords: [String: String] = {
        var k: [String: String] = [:]
        for w in ["INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "TRUNCATE", "OVERWRITE", "INTO", "COPY", "LOAD"] {
            k[w] = "it writes data"
        }
        // Not REPLACE: `replace(s, a, b)` is a common string function, and REPLACE only writes after CREATE OR or
        // INSERT, or at the start of a statement, all refused already.
        for w in ["CREATE", "ALTER", "DROP", "UNDROP", "RENAME", "CLONE", "RESTORE", "CONVERT", "REORG",
                  "OPTIMIZE", "VACUUM", "MSCK", "REPAIR", "FSCK", "SYNC"]
        {
            k[w] = "it changes tables"
        }
        for w in ["GRANT", "REVOKE", "DENY"] { k[w] = "it changes permissions" }
        for w in ["SET", "RESET", "UNSET", "USE", "DECLARE"] { k[w] = "it changes the session" }
        for w in ["CALL", "EXECUTE", "IMMEDIATE"] { k[w] = "it runs other statements" }
        for w in ["REFRESH", "CACHE", "UNCACHE", "CLEAR", "ANALYZE"] { k[w] = "it is a maintenance statement" }
        for w in ["BEGIN", "COMMIT", "ROLLBACK", "EXPORT"] { k[w] = "it is not a query" }
        return k
    }()

    /// Functions refused anywhere: they read files, streams, secrets or other systems, reach the network, call
    /// models, or run code outside SQL.
    public static let forbiddenFunctions: Set<String> = [
        "read_files", "read_kafka", "read_kinesis", "read_pubsub", "read_pulsar", "read_statestore",
        "read_state_metadata", "cloud_files", "cloud_files_state", "sql", "stream", "http_request", "ai_query",
        "secret", "try_secret", "list_secrets", "reflect", "java_method", "try_reflect", "remote_query",
        "vector_search", "event_log", "table_changes",
    ]

    /// Prefixes of refused function names: `read_…` (files and streams), `ai_…` (model calls), `cloud_files…`.
    public static let forbiddenFunctionPrefixes = ["read_", "ai_", "cloud_files"]

    /// The table-valued functions allowed in a FROM position: Spark's generators, which compute rows from their
    /// arguments and read nothing.
    public static let tableValuedFunctions: Set<String> = [
        "range", "explode", "explode_outer", "posexplode", "posexplode_outer", "inline", "inline_outer", "stack",
    ]

    /// Words after which a `(…)` in a FROM position is not a function call.
    static let relationKeywordsBeforeParen: Set<String> = ["VALUES", "LATERAL"]

    /// Keywords that start or continue a clause; they decide whether a `,` separates FROM sources.
    static let clauseKeywords: Set<String> = [
        "SELECT", "FROM", "WHERE", "GROUP", "HAVING", "ORDER", "SORT", "CLUSTER", "DISTRIBUTE", "LIMIT", "OFFSET",
        "QUALIFY", "WINDOW", "UNION", "INTERSECT", "EXCEPT", "MINUS", "ON", "USING", "JOIN", "PIVOT", "UNPIVOT",
    ]

    /// Keywords after which `:name` is a parameter marker rather than the JSON path operator (`raw:owner`).
    static let operandKeywords: Set<String> = [
        "SELECT", "WHERE", "AND", "OR", "NOT", "ON", "WHEN", "THEN", "ELSE", "CASE", "BY", "HAVING", "LIMIT",
        "OFFSET", "IN", "LIKE", "ILIKE", "RLIKE", "REGEXP", "BETWEEN", "IS", "DISTINCT", "ALL", "ANY", "SOME",
        "EXISTS", "QUALIFY", "INTERVAL", "ESCAPE", "RETURN", "FROM", "AS", "DIV",
    ]

    /// Bidirectional-text controls: they reorder how text is displayed without changing what runs.
    static func isBidiControl(_ v: UInt32) -> Bool {
        (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v) || v == 0x200E || v == 0x200F || v == 0x061C
    }

    /// Checks `text`: the accepted statement, normalised, or the refusal of the first problem in it.
    public static func check(_ text: String) -> Result<GuardedSQL, SQLGuardRefusal> {
        if let r = rawTextRefusal(text) { return .failure(r) }
        let tokens: [SQLToken]
        switch SQLTokenizer.tokenize(text) {
        case .success(let t): tokens = t
        case .failure(let e):
            return .failure(SQLGuardRefusal(token: e.token, line: e.line, column: e.column, problem: e.problem))
        }
        guard let first = tokens.first else {
            return .failure(SQLGuardRefusal(
                token: "", line: 1, column: 1, problem: "the text is empty (or only comments)"))
        }
        if let r = structureRefusal(tokens) { return .failure(r) }
        let last = tokens.last!.isSymbol(";") ? tokens[tokens.count - 2] : tokens.last!
        let bytes = Array(text.utf8)
        return .success(GuardedSQL(
            checked: String(decoding: bytes[first.utf8Range.lowerBound..<last.utf8Range.upperBound], as: UTF8.self)))
    }

    /// Checks that hold everywhere, inside strings and comments too.
    static func rawTextRefusal(_ text: String) -> SQLGuardRefusal? {
        var line = 1
        var column = 1
        var previous: Unicode.Scalar?
        for s in text.unicodeScalars {
            if previous == "$" && s == "{" {
                return SQLGuardRefusal(
                    token: "${", line: line, column: column - 1,
                    problem: "${…} is refused everywhere, strings and comments included: Spark substitutes ${…} variables in the text before it reads it")
            }
            if isBidiControl(s.value) {
                return SQLGuardRefusal(
                    token: SQLTokenizer.describe(s), line: line, column: column,
                    problem: "an invisible bidirectional-text control character is refused everywhere: it makes the text display differently from what runs")
            }
            if s == "\n" {
                line += 1
                column = 1
            } else {
                column += 1
            }
            previous = s
        }
        return nil
    }

    /// A token as a refusal shows it: at most 40 characters, control and invisible characters as `U+XXXX`.
    static func shown(_ t: SQLToken) -> String {
        var out = ""
        for s in t.text.unicodeScalars {
            if out.unicodeScalars.count >= 40 {
                out += "…"
                break
            }
            if s.value < 0x20 || s.value == 0x7F || (s.value >= 0x80 && !s.properties.isAlphabetic) {
                out += "<" + SQLTokenizer.describe(s) + ">"
            } else {
                out.unicodeScalars.append(s)
            }
        }
        return out
    }

    static func refuse(_ t: SQLToken, _ problem: String) -> SQLGuardRefusal {
        SQLGuardRefusal(token: shown(t), line: t.line, column: t.column, problem: problem)
    }

    /// One level of parentheses while walking the tokens.
    struct Frame {
        /// The last clause keyword seen at this level (`FROM`, `WHERE`, …).
        var clause: String?
        /// Whether the `(` that opened this level stands where a FROM source does (`FROM (…)`).
        var relation: Bool
        /// The `(` (nil for the statement level).
        var open: SQLToken?
    }

    static func structureRefusal(_ tokens: [SQLToken]) -> SQLGuardRefusal? {
        let first = tokens[0]
        guard first.isWord("SELECT") || first.isWord("WITH") else {
            return refuse(first, "custom SQL must start with SELECT or WITH")
        }
        var frames = [Frame(clause: nil, relation: false, open: nil)]
        var hint: SQLToken?
        /// Whether the name (chain) ending at token `k` stands where a FROM source does.
        func isRelationPosition(_ k: Int) -> Bool {
            var s = k
            while s >= 2 && tokens[s - 1].isSymbol(".")
                && (tokens[s - 2].kind == .word || tokens[s - 2].kind == .quotedIdentifier)
            {
                s -= 2
            }
            guard s > 0 else { return false }
            let p = tokens[s - 1]
            if p.kind == .word {
                return ["FROM", "JOIN", "LATERAL", "VIEW", "OUTER", "TABLE"].contains { p.isWord($0) }
            }
            if p.isSymbol(",") { return ["FROM", "ON", "USING", "JOIN"].contains(frames.last!.clause ?? "") }
            // The `(` was read already: its level is the innermost one.
            if p.isSymbol("(") { return frames.last!.relation }
            return false
        }
        for (i, t) in tokens.enumerated() {
            let next: SQLToken? = i + 1 < tokens.count ? tokens[i + 1] : nil
            switch t.kind {
            case .symbol:
                switch t.text {
                case ";":
                    if next != nil {
                        return refuse(t, "a ';' ends the statement here and more follows: custom SQL is exactly one statement (a single trailing ';' is fine)")
                    }
                    if frames.count > 1 { return refuse(frames.last!.open!, "this '(' is never closed") }
                case "(":
                    // A `(` where a FROM source goes (`FROM (`, `JOIN (`, `, (` in a FROM list).
                    let relation: Bool
                    if i > 0 {
                        let p = tokens[i - 1]
                        relation =
                            (p.kind == .word && ["FROM", "JOIN", "LATERAL"].contains { p.isWord($0) })
                            || (p.isSymbol(",") && ["FROM", "ON", "USING", "JOIN"].contains(frames.last!.clause ?? ""))
                            || (p.isSymbol("(") && frames.last!.relation)
                    } else {
                        relation = false
                    }
                    frames.append(Frame(clause: nil, relation: relation, open: t))
                case ")":
                    guard frames.count > 1 else {
                        return refuse(t, "this ')' closes a parenthesis the text never opened (it would close the query around it)")
                    }
                    frames.removeLast()
                case "/*+":
                    if hint != nil { return refuse(t, "a hint inside a hint") }
                    hint = t
                case "*/":
                    guard hint != nil else { return refuse(t, "'*/' without a '/*+' hint before it") }
                    hint = nil
                default:
                    break
                }
            case .parameter:
                let p: SQLToken? = i > 0 ? tokens[i - 1] : nil
                let path =
                    t.text.hasPrefix(":")
                    && (p?.kind == .quotedIdentifier || p?.isSymbol(")") == true || p?.isSymbol("]") == true
                        || (p?.kind == .word && !operandKeywords.contains(p!.text.uppercased())))
                if !path {
                    return refuse(t, "parameter markers are not allowed in custom SQL: it has no parameters of its own")
                }
            case .word:
                let upper = t.text.uppercased()
                if let why = forbiddenKeywords[upper] {
                    return refuse(t, "\(upper) is not allowed: \(why) (quote a column of that name in backticks)")
                }
                if clauseKeywords.contains(upper) { frames[frames.count - 1].clause = upper == "JOIN" ? "FROM" : upper }
                if ["VERSION", "SYSTEM_VERSION", "TIMESTAMP", "SYSTEM_TIME"].contains(upper),
                    next?.isWord("AS") == true, i + 2 < tokens.count, tokens[i + 2].isWord("OF")
                {
                    return refuse(t, "time travel (\(upper) AS OF) is not allowed: the engine decides which data to read")
                }
                if upper == "WITH" && next?.isWord("ROLLUP") != true && next?.isWord("CUBE") != true {
                    if next?.isSymbol("(") == true {
                        return refuse(t, "table options (WITH (…)) are not allowed")
                    }
                    if let r = withRefusal(tokens, at: i) { return r }
                }
                if upper == "STREAM" && isRelationPosition(i) {
                    return refuse(t, "streaming reads (STREAM) are not allowed")
                }
                if upper == "IDENTIFIER" && next?.isSymbol("(") == true {
                    return refuse(t, "IDENTIFIER(…) is not allowed: name tables and columns directly")
                }
                if next?.isSymbol("(") == true, let r = callRefusal(t, name: t.text, relation: isRelationPosition(i)) {
                    return r
                }
            case .quotedIdentifier:
                if next?.isSymbol("(") == true {
                    // `` `a``b` `` names `` a`b ``; a doubled backtick cannot make a forbidden name out of an allowed one.
                    var name = ""
                    var tick = false
                    for ch in t.text.dropFirst().dropLast() {
                        if ch == "`" && tick {
                            tick = false
                            continue
                        }
                        tick = ch == "`"
                        name.append(ch)
                    }
                    if let r = callRefusal(t, name: name, relation: isRelationPosition(i)) { return r }
                }
            case .number, .string:
                break
            }
        }
        if let hint { return refuse(hint, "this hint is never closed with '*/'") }
        if frames.count > 1 { return refuse(frames.last!.open!, "this '(' is never closed") }
        return nil
    }

    /// A function call `name(`: refused when the function is forbidden anywhere, or stands in a FROM position and is
    /// not an allowed table-valued function.
    static func callRefusal(_ t: SQLToken, name: String, relation: Bool) -> SQLGuardRefusal? {
        let lower = name.lowercased()
        if forbiddenFunctions.contains(lower) || forbiddenFunctionPrefixes.contains(where: { lower.hasPrefix($0) }) {
            return refuse(t, "the function \(lower) is not allowed: it reads files, streams, secrets or other systems, or calls out")
        }
        if relation && t.kind == .word && relationKeywordsBeforeParen.contains(name.uppercased()) { return nil }
        if relation && !tableValuedFunctions.contains(lower) {
            let allowed = tableValuedFunctions.sorted().joined(separator: ", ")
            return refuse(t, "the table-valued function \(lower) is not allowed in FROM (allowed: \(allowed))")
        }
        return nil
    }

    /// `WITH [RECURSIVE] name [(columns)] [AS] (query) [, …]` must be followed by `SELECT`: Spark also takes
    /// `WITH … INSERT` and the like.
    static func withRefusal(_ tokens: [SQLToken], at i: Int) -> SQLGuardRefusal? {
        /// The index after the parenthesised group opening at `k`, or nil when it does not close.
        func skipGroup(_ k: Int) -> Int? {
            var depth = 0
            var j = k
            while j < tokens.count {
                if tokens[j].isSymbol("(") { depth += 1 }
                if tokens[j].isSymbol(")") {
                    depth -= 1
                    if depth == 0 { return j + 1 }
                }
                j += 1
            }
            return nil
        }
        let malformed = refuse(tokens[i], "WITH must be followed by name AS (SELECT …) [, …] and then SELECT")
        var j = i + 1
        if j < tokens.count && tokens[j].isWord("RECURSIVE") { j += 1 }
        while true {
            guard j < tokens.count, tokens[j].kind == .word || tokens[j].kind == .quotedIdentifier else { return malformed }
            j += 1
            if j < tokens.count && tokens[j].isSymbol("(") {
                guard let k = skipGroup(j) else { return malformed }
                j = k
            }
            if j < tokens.count && tokens[j].isWord("AS") { j += 1 }
            guard j < tokens.count, tokens[j].isSymbol("("), let k = skipGroup(j) else { return malformed }
            j = k
            guard j < tokens.count, tokens[j].isSymbol(",") else { break }
            j += 1
        }
        guard j < tokens.count, tokens[j].isWord("SELECT") else {
            guard j < tokens.count else { return malformed }
            let upper = tokens[j].text.uppercased()
            if tokens[j].kind == .word, let why = forbiddenKeywords[upper] {
                return refuse(tokens[j], "\(upper) is not allowed: \(why); after WITH … the statement must be a SELECT")
            }
            return refuse(tokens[j], "after WITH … the statement must be a SELECT")
        }
        return nil
    }
}

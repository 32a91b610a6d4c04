/// Databricks SQL's query result cache, as the simulator models it.
///
/// Databricks SQL keeps the results of the queries a warehouse ran (`use_cached_result`, on by default) and
/// answers a re-submitted query from that cache while none of its tables has changed; `system.query.history`
/// then shows `from_result_cache` and `cache_origin_statement_id`. The simulator does the same: a statement
/// submitted again by the same principal, to the same warehouse, with the same tokens (identifiers compared
/// case-insensitively, whitespace and comments ignored), parameters, default catalog and schema, disposition,
/// format and `row_limit`, while no table was added or committed to, gets a new statement id that shares the
/// earlier result — and its rendered chunk files, which is the simulator's real saving (rendering JSON is most
/// of its CPU). Statements whose result depends on the clock (`current_timestamp()`, `now()`) and failed
/// statements are not cached.
struct ResultCache: Sendable {
    struct Entry: Sendable {
        /// The statement whose execution produced the result; chunk files are rendered and kept under its id.
        var originID: String
        var result: ResultSet
        var lastUsed: UInt64
        /// What the result is charged against `limit` (rows × estimated bytes per row).
        var bytes: Int
    }

    /// At most this many results are remembered (least recently used dropped first); their rendered chunk files
    /// are bounded separately, by ``BlobCache``.
    static let maxEntries = 256

    /// The results' estimated size at most (a materialized result holds its rows); a larger one is not cached.
    let limit: Int
    private var total = 0
    private var entries: [String: Entry] = [:]
    private var uses: UInt64 = 0
    /// The data generation the entries were made under; any table change starts a new one and empties the cache.
    private var generation: UInt64 = 0

    init(limit: Int) { self.limit = limit }

    /// The cached result for `key` under data generation `generation`, if any.
    mutating func lookup(_ key: String, generation: UInt64) -> Entry? {
        guard generation == self.generation, var e = entries[key] else { return nil }
        uses &+= 1
        e.lastUsed = uses
        entries[key] = e
        return e
    }

    mutating func insert(_ key: String, originID: String, result: ResultSet, generation: UInt64) {
        if generation != self.generation {
            // Results of an older generation (a later one cannot have been computed before this insert).
            guard generation > self.generation else { return }
            entries.removeAll()
            total = 0
            self.generation = generation
        }
        let bytes = result.rows.count * max(1, result.rows.estimatedBytesPerRow)
        guard bytes <= limit else { return }
        if let old = entries.removeValue(forKey: key) { total -= old.bytes }
        while !entries.isEmpty && (entries.count >= Self.maxEntries || total + bytes > limit),
            let oldest = entries.min(by: { $0.value.lastUsed < $1.value.lastUsed })?.key
        {
            total -= entries.removeValue(forKey: oldest)!.bytes
        }
        uses &+= 1
        total += bytes
        entries[key] = Entry(originID: originID, result: result, lastUsed: uses, bytes: bytes)
    }

    var count: Int { entries.count }

    /// The cache key of a request, or nil when its result must not be cached (a clock-dependent function, or a
    /// statement the lexer rejects — it will fail anyway).
    static func key(
        _ request: ExecuteRequest, principal: Int, catalog: String, schema: String
    ) -> String? {
        guard let tokens = try? Lexer(request.statement).tokenize() else { return nil }
        // Every part length-prefixed, so no two different requests make the same key.
        var key = ""
        func add(_ tag: String, _ text: String) { key += "\(tag)\(text.utf8.count):\(text)" }
        for (tag, field) in [
            ("W", request.warehouseID), ("P", String(principal)), ("C", catalog), ("S", schema),
            ("D", request.disposition), ("F", request.format), ("L", request.rowLimit.map(String.init) ?? "-"),
        ] {
            add(tag, field)
        }
        for t in tokens {
            switch t.kind {
            case .identifier:
                let word = t.text.lowercased()
                if word == "current_timestamp" || word == "now" { return nil }
                add("w", word)
            case .quotedIdentifier: add("q", t.text)
            case .string: add("s", t.text)
            case .integer, .decimal: add("n", t.text)
            case .parameter: add("p", t.text)
            case .symbol: add("y", t.text)
            case .end: continue
            }
        }
        for name in request.parameters.keys.sorted() {
            let p = request.parameters[name]!
            add("N", name)
            add("T", p.type)
            if let v = p.value { add("V", v) } else { key += "null" }
        }
        return key
    }
}

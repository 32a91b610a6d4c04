extension SQL {
    /// The alias of a custom SQL source inside the statements the engine builds around it.
    public static let customSourceAlias = "src"

    /// `SELECT <cols> FROM (` + line break + the guarded text + line break + `) AS src`.
    ///
    /// The text is never concatenated with values: it stands alone inside the parentheses, everything the engine adds
    /// is outside them, with quoted identifiers and bound parameters. The closing parenthesis starts a line of its own,
    /// so a `--` comment inside the text cannot reach it (the guard also drops trailing comments).
    static func customSource(_ source: GuardedSQL, columns: [String]?) -> String {
        let cols = columns.map { $0.map(quoteIdentifier).joined(separator: ", ") } ?? "*"
        return "SELECT \(cols) FROM (\n\(source.text)\n) AS \(customSourceAlias)"
    }

    /// A snapshot of a custom SQL source: `SELECT <cols | *> FROM (<sql>) AS src [WHERE …]`.
    ///
    /// `conditions` are built by the engine (e.g. ``filterConditions(_:reading:)``) over the source's output columns.
    public static func customSnapshot(_ source: GuardedSQL, columns: [String]?, conditions: [String] = []) -> String {
        customSource(source, columns: columns) + whereClause(conditions)
    }

    /// One keyset page of a custom SQL source read by watermark:
    /// `SELECT <cols | *> FROM (<sql>) AS src WHERE [conditions AND] c <= :wm_upper
    /// [AND (c > :wm_from OR (c = :wm_from AND k > :wm_key))] ORDER BY c, k LIMIT :n` (each condition parenthesised).
    /// Rows with a NULL cursor are in no page.
    ///
    /// - Parameters:
    ///   - cursor: the watermark column of the source's output; `key`: the tie-breaker (the external id column).
    ///   - cursorType: the type the cursor bounds are bound as (`TIMESTAMP` unless the cursor is, say, a `BIGINT`).
    ///   - upperBound: the run's fixed upper bound of the cursor, or nil for none.
    ///   - after: the last (cursor, key) read, or nil for the first page.
    ///   - pageSize: rows per page, bound as `:n`.
    ///   - conditions, parameters: the engine's own conditions (filters) and their bound parameters.
    /// - Returns: the statement and all its bound parameters.
    public static func customWatermarkPage(
        _ source: GuardedSQL, columns: [String]?, cursor: String, key: String, cursorType: String = "TIMESTAMP",
        conditions: [String] = [], parameters: [BoundParameter] = [], upperBound: String?,
        after: (cursor: String, key: String)?, pageSize: Int
    ) -> (sql: String, parameters: [BoundParameter]) {
        let c = quoteIdentifier(cursor)
        let k = quoteIdentifier(key)
        var conds = conditions
        var params = parameters
        if let upperBound {
            conds.append("\(c) <= :wm_upper")
            params.append(BoundParameter(name: "wm_upper", value: upperBound, type: cursorType))
        }
        if let after {
            conds.append("\(c) > :wm_from OR (\(c) = :wm_from AND \(k) > :wm_key)")
            params.append(BoundParameter(name: "wm_from", value: after.cursor, type: cursorType))
            params.append(BoundParameter(name: "wm_key", value: after.key, type: "STRING"))
        } else if upperBound == nil {
            // No bound leaves NULL cursors out of the first page: they cannot be paged (the engine counts them apart).
            conds.append("\(c) IS NOT NULL")
        }
        params.append(BoundParameter(name: "n", value: String(max(1, pageSize)), type: "INT"))
        return (customSource(source, columns: columns) + whereClause(conds) + " ORDER BY \(c), \(k) LIMIT :n", params)
    }

    /// A test run of a custom SQL source ("test SQL"): `SELECT * FROM (<sql>) AS src LIMIT :n`.
    public static func customTestRun(_ source: GuardedSQL, limit: Int) -> (sql: String, parameters: [BoundParameter]) {
        (customSource(source, columns: nil) + " LIMIT :n", [BoundParameter(name: "n", value: String(max(0, limit)), type: "INT")])
    }
}

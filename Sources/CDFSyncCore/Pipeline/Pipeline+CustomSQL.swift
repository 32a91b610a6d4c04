/// A pipeline whose source is one query (`source: {sql: "SELECT … FROM a JOIN b ON …"}`) instead of a table.
extension Pipeline {
    /// The keys of `source:` given as a mapping.
    enum CustomSQLKeys: String, CodingKey { case sql }

    /// What ``source`` holds for a custom SQL source (messages and run records name the source with it).
    public static let customSQLSourceLabel = "custom SQL"

    /// Whether the source is a query (``sourceSQL``) rather than a table or view.
    public var hasCustomSQL: Bool { sourceSQL != nil }

    /// The custom SQL as the read-only guard accepts it, normalised; nil for a table source.
    ///
    /// - Throws: the guard's ``SQLGuardRefusal`` (the offending token, its line and column in the query, what is
    ///   wrong and what custom SQL may be).
    public func guardedSQL() throws(SQLGuardRefusal) -> GuardedSQL? {
        guard let sql = sourceSQL else { return nil }
        return try ReadOnlySQLGuard.check(sql).get()
    }

    /// Problems of a custom SQL source visible without the warehouse: the guard's verdict, and a mode or start that
    /// only a table's change data feed has.
    func customSQLProblems(_ sql: String) -> [String] {
        var p: [String] = []
        if case .failure(let refusal) = ReadOnlySQLGuard.check(sql) { p.append("source.sql: \(refusal)") }
        if mode == .cdf {
            p.append("mode: cdf needs a table's change data feed, and a custom SQL source has none: use mode: "
                + "watermark (with a cursor column) or mode: snapshot (or auto, which picks one)")
        }
        switch start {
        case .first: break
        case .latest, .version, .timestamp:
            p.append("start: applies to a table's change data; a custom SQL source is read by watermark or snapshot "
                + "(remove start:)")
        }
        return p
    }
}

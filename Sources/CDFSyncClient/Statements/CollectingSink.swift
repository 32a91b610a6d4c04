import CDFSyncCore

/// Collects a small result whole, as strings, with its column names. For metadata statements (history,
/// properties, discovery), never for change data.
public final class CollectingSink: ResultSink {
    public private(set) var columns: [String] = []
    /// The type of each column as the manifest writes it (`type_text`: `BIGINT`, `DECIMAL(10,2)`, …), in the order of
    /// ``columns``.
    public private(set) var columnTypes: [String] = []
    public private(set) var rows: [[String?]] = []
    public private(set) var statementID = ""
    private var committed = 0
    private let limit: Int

    /// - Parameter limit: the most rows kept; more is an error (the caller asked for a small result).
    public init(limit: Int = 100_000) { self.limit = limit }

    public func manifestReady(_ manifest: ResultManifest, statementID: String) throws {
        self.statementID = statementID
        let described = (manifest.schema.columns ?? []).sorted { $0.position < $1.position }
        columns = described.map(\.name)
        columnTypes = described.map(\.typeText)
    }

    public func row(_ row: borrowing RowView) throws {
        guard rows.count < limit else {
            throw DatabricksError(.invalidResponse, "statement returned more than \(limit) rows where a small result was expected",
                remedy: "Narrow the query (catalog/schema filters).")
        }
        var values: [String?] = []
        values.reserveCapacity(row.count)
        for i in 0..<row.count { values.append(row.string(i)) }
        rows.append(values)
    }

    public func discardPartialChunk() { rows.removeSubrange(committed...) }
    public func chunkCompleted(index: Int, rowCount: Int) throws { committed = rows.count }

    /// The rows as dictionaries keyed by lower-cased column name.
    public var records: [[String: String?]] {
        let names = columns.map { $0.lowercased() }
        return rows.map { r in
            var d: [String: String?] = [:]
            for (i, n) in names.enumerated() where i < r.count { d[n] = r[i] }
            return d
        }
    }
}

extension CollectingSink {
    /// The position of a column, matched case-insensitively (information_schema names arrive in lower case).
    public func index(of column: String) -> Int? {
        let want = column.lowercased()
        return columns.firstIndex { $0.lowercased() == want }
    }

    /// The value of `column` in row `row`, or nil when NULL or the column is missing.
    public func value(_ row: Int, _ column: String) -> String? {
        guard let i = index(of: column), i < rows[row].count else { return nil }
        return rows[row][i]
    }
}

/// The name discovery and the connection test use for a whole small result.
public typealias RowCollector = CollectingSink

extension StatementClient {
    /// Runs a small statement and returns its rows whole.
    public func collect(_ statement: Statement) throws -> CollectingSink {
        let sink = CollectingSink()
        try execute(statement, sink: sink)
        return sink
    }
}

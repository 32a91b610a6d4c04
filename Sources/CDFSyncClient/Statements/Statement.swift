import CDFSyncCore

/// A named parameter marker value (`:name` in the SQL). Values always travel as strings; `nil` is SQL NULL.
public struct StatementParameter: Sendable, Equatable {
    public var name: String
    public var value: String?
    /// A Databricks SQL type such as `BIGINT` or `DECIMAL(10,2)`; `nil` means STRING.
    public var type: String?

    public init(name: String, value: String?, type: String? = nil) {
        self.name = name
        self.value = value
        self.type = type
    }
}

/// A statement cdfsync built itself (never user text) plus its bound parameters.
public struct Statement: Sendable, Equatable {
    /// How the result comes back (``ResultDisposition``, shared with the run planning in the core module).
    public typealias Disposition = ResultDisposition

    public var sql: String
    public var parameters: [StatementParameter]
    public var disposition: Disposition

    public init(sql: String, parameters: [StatementParameter] = [], disposition: Disposition = .inline) {
        self.sql = sql
        self.parameters = parameters
        self.disposition = disposition
    }

    /// The JSON body of `POST /api/2.0/sql/statements`.
    func requestBody(warehouseID: String, catalog: String?, schema: String?, waitTimeout: Int) -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.key("statement"); w.string(sql)
        w.key("warehouse_id"); w.string(warehouseID)
        if let catalog { w.key("catalog"); w.string(catalog) }
        if let schema { w.key("schema"); w.string(schema) }
        w.key("format"); w.string("JSON_ARRAY")
        w.key("disposition"); w.string(disposition.rawValue)
        w.key("wait_timeout"); w.string("\(waitTimeout)s")
        w.key("on_wait_timeout"); w.string("CONTINUE")
        w.key("parameters")
        w.beginArray()
        for p in parameters {
            w.beginObject()
            w.key("name"); w.string(p.name)
            if let v = p.value { w.key("value"); w.string(v) }
            if let t = p.type { w.key("type"); w.string(t) }
            w.endObject()
        }
        w.endArray()
        w.endObject()
        return w.bytes
    }
}

/// Receives a statement's result as it streams. Calls arrive on the executing thread, in this order:
/// rows of chunk 0, `manifestReady`, `chunkCompleted(0)`, rows of chunk 1, `chunkCompleted(1)`, ...
/// A chunk whose transfer broke and is fetched again first gets `discardPartialChunk()`.
public protocol ResultSink: AnyObject {
    /// The manifest is known and its schema can be checked. No chunk has completed yet.
    func manifestReady(_ manifest: ResultManifest, statementID: String) throws
    /// One row. The view is valid only during the call.
    func row(_ row: borrowing RowView) throws
    /// Rows received since the last completed chunk are void; the chunk will be delivered again.
    func discardPartialChunk()
    /// Every row of chunk `index` has been delivered and the chunk body was well-formed.
    func chunkCompleted(index: Int, rowCount: Int) throws
}

/// What one statement did.
public struct StatementOutcome: Sendable {
    public var statementID: String
    public var manifest: ResultManifest?
    public var rowCount: Int
    /// Bytes of JSON received for the result (all chunks).
    public var bytesReceived: Int
    public var chunkCount: Int
    public var seconds: Double
}

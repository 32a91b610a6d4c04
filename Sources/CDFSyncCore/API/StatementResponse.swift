/// The body of `POST /api/2.0/sql/statements` and `GET /api/2.0/sql/statements/{id}`.
///
/// `result.data_array` is deliberately not modelled: rows stream through ``ResultStreamDecoder``, and this
/// type decodes the metadata bytes that ``ResultStreamDecoder/finish()`` returns. Unknown fields are ignored.
public struct StatementResponse: Codable, Sendable, Hashable {
    /// The statement id (a UUID-formatted string; treat as opaque).
    public var statementID: String
    /// Execution state and error, when present.
    public var status: StatementStatus?
    /// Result schema and chunk layout; present once the statement has succeeded.
    public var manifest: ResultManifest?
    /// The first chunk's metadata (or its external links); present once the statement has succeeded.
    public var result: ResultData?

    /// Creates a response value (for simulators and tests).
    public init(statementID: String, status: StatementStatus? = nil, manifest: ResultManifest? = nil,
                result: ResultData? = nil) {
        self.statementID = statementID
        self.status = status
        self.manifest = manifest
        self.result = result
    }

    enum CodingKeys: String, CodingKey {
        case statementID = "statement_id"
        case status, manifest, result
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        statementID = try c.decode(String.self, forKey: .statementID)
        status = try c.decodeIfPresent(StatementStatus.self, forKey: .status)
        manifest = try c.decodeIfPresent(ResultManifest.self, forKey: .manifest)
        result = try c.decodeIfPresent(ResultData.self, forKey: .result)
    }
}

/// `status` of a statement.
public struct StatementStatus: Codable, Sendable, Hashable {
    /// The lifecycle state.
    public var state: StatementState
    /// Why the statement failed, when `state` is FAILED (sometimes also with CANCELED).
    public var error: ServiceError?
    /// The 5-character SQLSTATE; documented, but often absent (then use ``SQLErrorClass/parse(message:)``).
    public var sqlState: String?

    /// Creates a status value.
    public init(state: StatementState, error: ServiceError? = nil, sqlState: String? = nil) {
        self.state = state
        self.error = error
        self.sqlState = sqlState
    }

    enum CodingKeys: String, CodingKey {
        case state, error
        case sqlState = "sql_state"
    }
}

/// `status.error`: an execution failure reported with HTTP 200.
public struct ServiceError: Codable, Sendable, Hashable {
    /// The service code, e.g. `BAD_REQUEST`; may be numeric.
    public var errorCode: ErrorCode
    /// The server's message; the Spark/Delta error class and SQLSTATE are embedded in it. Empty when absent.
    public var message: String

    /// Creates an execution error value.
    public init(errorCode: ErrorCode, message: String) {
        self.errorCode = errorCode
        self.message = message
    }

    enum CodingKeys: String, CodingKey {
        case errorCode = "error_code"
        case message
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        errorCode = try c.decodeIfPresent(ErrorCode.self, forKey: .errorCode) ?? .string("UNKNOWN")
        message = try c.decodeIfPresent(String.self, forKey: .message) ?? ""
    }

    /// The error class and SQLSTATE parsed from ``message``.
    public var parsedClass: (errorClass: String?, sqlState: String?) { SQLErrorClass.parse(message: message) }
}

/// `manifest`: the schema and chunk layout of a result.
public struct ResultManifest: Codable, Sendable, Hashable {
    /// `JSON_ARRAY`, `ARROW_STREAM` or `CSV`.
    public var format: String
    /// The result columns.
    public var schema: ResultSchema
    /// Number of chunks; 0 when there are no rows.
    public var totalChunkCount: Int
    /// Every chunk's position; absent for empty results.
    public var chunks: [ChunkInfo]?
    /// Rows in the whole result.
    public var totalRowCount: Int64
    /// Bytes in the whole result (absent for INLINE).
    public var totalByteCount: Int64?
    /// Whether `row_limit`/`byte_limit` cut the result.
    public var truncated: Bool?

    /// Creates a manifest (for simulators and tests).
    public init(format: String, schema: ResultSchema, totalChunkCount: Int, chunks: [ChunkInfo]? = nil,
                totalRowCount: Int64, totalByteCount: Int64? = nil, truncated: Bool? = nil) {
        self.format = format
        self.schema = schema
        self.totalChunkCount = totalChunkCount
        self.chunks = chunks
        self.totalRowCount = totalRowCount
        self.totalByteCount = totalByteCount
        self.truncated = truncated
    }

    enum CodingKeys: String, CodingKey {
        case format, schema, chunks, truncated
        case totalChunkCount = "total_chunk_count"
        case totalRowCount = "total_row_count"
        case totalByteCount = "total_byte_count"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        format = try c.decode(String.self, forKey: .format)
        schema = try c.decode(ResultSchema.self, forKey: .schema)
        totalChunkCount = try c.flexibleIntIfPresent(forKey: .totalChunkCount) ?? 0
        chunks = try c.decodeIfPresent([ChunkInfo].self, forKey: .chunks)
        totalRowCount = try c.flexibleInt64IfPresent(forKey: .totalRowCount) ?? 0
        totalByteCount = try c.flexibleInt64IfPresent(forKey: .totalByteCount)
        truncated = try c.decodeIfPresent(Bool.self, forKey: .truncated)
    }
}

extension ResultManifest {
    /// What in this manifest no warehouse would write, or nil when it holds together: counts that are negative, a
    /// result with rows but no chunks (or chunks but no rows), more chunks than rows, or a `chunks` list whose
    /// indexes, row offsets and counts do not follow one another from 0 or do not add up to `total_row_count`.
    /// Every number here comes from the wire; the reader bounds its loops and arrays by them.
    public var inconsistency: String? {
        if totalChunkCount < 0 || totalRowCount < 0 {
            return "total_chunk_count \(totalChunkCount), total_row_count \(totalRowCount)"
        }
        if (totalRowCount == 0) != (totalChunkCount == 0) || Int64(totalChunkCount) > totalRowCount {
            return "\(totalChunkCount) chunk(s) for \(totalRowCount) row(s)"
        }
        if schema.columnCount < 0 { return "column_count \(schema.columnCount)" }
        guard let chunks else { return nil }
        if chunks.count > totalChunkCount { return "\(chunks.count) chunks listed, total_chunk_count \(totalChunkCount)" }
        var offset: Int64 = 0
        for (i, c) in chunks.enumerated() {
            guard c.chunkIndex == i else { return "chunks[\(i)] has chunk_index \(c.chunkIndex)" }
            guard c.rowOffset == offset else { return "chunk \(i) starts at row \(c.rowOffset), not \(offset)" }
            guard c.rowCount > 0, c.rowCount <= totalRowCount - offset else {
                return "chunk \(i) has \(c.rowCount) row(s) (\(totalRowCount - offset) left of \(totalRowCount))"
            }
            offset += c.rowCount
        }
        if chunks.count == totalChunkCount && offset != totalRowCount {
            return "the chunks hold \(offset) row(s), total_row_count \(totalRowCount)"
        }
        return nil
    }
}

/// `manifest.schema`.
public struct ResultSchema: Codable, Sendable, Hashable {
    /// Number of columns; 0 for statements without a result set.
    public var columnCount: Int
    /// The columns, ordered by position; absent when `columnCount` is 0.
    public var columns: [ColumnInfo]?

    /// Creates a schema value.
    public init(columnCount: Int, columns: [ColumnInfo]? = nil) {
        self.columnCount = columnCount
        self.columns = columns
    }

    enum CodingKeys: String, CodingKey {
        case columnCount = "column_count"
        case columns
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        columnCount = try c.flexibleIntIfPresent(forKey: .columnCount) ?? 0
        columns = try c.decodeIfPresent([ColumnInfo].self, forKey: .columns)
    }
}

/// One result column.
public struct ColumnInfo: Codable, Sendable, Hashable {
    /// The column name (may be an expression such as `CAST(NULL AS DOUBLE)`).
    public var name: String
    /// The full SQL type, e.g. `DECIMAL(18,2)` or `MAP<STRING, STRING>`.
    public var typeText: String
    /// The base type, e.g. `LONG` for BIGINT.
    public var typeName: SQLTypeName
    /// 0-based position in each row.
    public var position: Int
    /// DECIMAL precision.
    public var typePrecision: Int?
    /// DECIMAL scale.
    public var typeScale: Int?
    /// INTERVAL qualifier, e.g. `DAY TO SECOND`.
    public var typeIntervalType: String?

    /// Creates a column description.
    public init(name: String, typeText: String, typeName: SQLTypeName, position: Int, typePrecision: Int? = nil,
                typeScale: Int? = nil, typeIntervalType: String? = nil) {
        self.name = name
        self.typeText = typeText
        self.typeName = typeName
        self.position = position
        self.typePrecision = typePrecision
        self.typeScale = typeScale
        self.typeIntervalType = typeIntervalType
    }

    enum CodingKeys: String, CodingKey {
        case name, position
        case typeText = "type_text"
        case typeName = "type_name"
        case typePrecision = "type_precision"
        case typeScale = "type_scale"
        case typeIntervalType = "type_interval_type"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        typeText = try c.decodeIfPresent(String.self, forKey: .typeText) ?? ""
        typeName = try c.decodeIfPresent(SQLTypeName.self, forKey: .typeName)
            ?? SQLTypeName(rawValue: typeText.prefix { $0.isLetter || $0 == "_" }.uppercased())
        position = try c.flexibleInt(forKey: .position)
        typePrecision = try c.flexibleIntIfPresent(forKey: .typePrecision)
        typeScale = try c.flexibleIntIfPresent(forKey: .typeScale)
        typeIntervalType = try c.decodeIfPresent(String.self, forKey: .typeIntervalType)
    }
}

/// `manifest.chunks[]`.
public struct ChunkInfo: Codable, Sendable, Hashable {
    /// 0-based chunk index.
    public var chunkIndex: Int
    /// Index of the chunk's first row in the whole result.
    public var rowOffset: Int64
    /// Rows in the chunk.
    public var rowCount: Int64
    /// Absent for INLINE results.
    public var byteCount: Int64?

    /// Creates a chunk description.
    public init(chunkIndex: Int, rowOffset: Int64, rowCount: Int64, byteCount: Int64? = nil) {
        self.chunkIndex = chunkIndex
        self.rowOffset = rowOffset
        self.rowCount = rowCount
        self.byteCount = byteCount
    }

    enum CodingKeys: String, CodingKey {
        case chunkIndex = "chunk_index"
        case rowOffset = "row_offset"
        case rowCount = "row_count"
        case byteCount = "byte_count"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        chunkIndex = try c.flexibleInt(forKey: .chunkIndex)
        rowOffset = try c.flexibleInt64IfPresent(forKey: .rowOffset) ?? 0
        rowCount = try c.flexibleInt64IfPresent(forKey: .rowCount) ?? 0
        byteCount = try c.flexibleInt64IfPresent(forKey: .byteCount)
    }
}

/// `result` of a statement response, and the whole body of `GET …/result/chunks/{n}`, minus `data_array`.
public struct ResultData: Codable, Sendable, Hashable {
    /// 0-based index of this chunk (INLINE).
    public var chunkIndex: Int?
    /// Index of this chunk's first row in the whole result (INLINE).
    public var rowOffset: Int64?
    /// Rows in this chunk (INLINE).
    public var rowCount: Int64?
    /// Bytes in this chunk (not sent for INLINE JSON).
    public var byteCount: Int64?
    /// The next chunk to fetch (INLINE); absent on the last chunk.
    public var nextChunkIndex: Int?
    /// Path (no host) of the next chunk, e.g. `/api/2.0/sql/statements/<id>/result/chunks/1`.
    public var nextChunkInternalLink: String?
    /// EXTERNAL_LINKS only; may hold one link or several.
    public var externalLinks: [ExternalLink]?

    /// Creates a result/chunk value (for simulators and tests).
    public init(chunkIndex: Int? = nil, rowOffset: Int64? = nil, rowCount: Int64? = nil, byteCount: Int64? = nil,
                nextChunkIndex: Int? = nil, nextChunkInternalLink: String? = nil,
                externalLinks: [ExternalLink]? = nil) {
        self.chunkIndex = chunkIndex
        self.rowOffset = rowOffset
        self.rowCount = rowCount
        self.byteCount = byteCount
        self.nextChunkIndex = nextChunkIndex
        self.nextChunkInternalLink = nextChunkInternalLink
        self.externalLinks = externalLinks
    }

    enum CodingKeys: String, CodingKey {
        case chunkIndex = "chunk_index"
        case rowOffset = "row_offset"
        case rowCount = "row_count"
        case byteCount = "byte_count"
        case nextChunkIndex = "next_chunk_index"
        case nextChunkInternalLink = "next_chunk_internal_link"
        case externalLinks = "external_links"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        chunkIndex = try c.flexibleIntIfPresent(forKey: .chunkIndex)
        rowOffset = try c.flexibleInt64IfPresent(forKey: .rowOffset)
        rowCount = try c.flexibleInt64IfPresent(forKey: .rowCount)
        byteCount = try c.flexibleInt64IfPresent(forKey: .byteCount)
        nextChunkIndex = try c.flexibleIntIfPresent(forKey: .nextChunkIndex)
        nextChunkInternalLink = try c.decodeIfPresent(String.self, forKey: .nextChunkInternalLink)
        externalLinks = try c.decodeIfPresent([ExternalLink].self, forKey: .externalLinks)
    }
}

/// One pre-signed download for a chunk (`EXTERNAL_LINKS`).
///
/// Fetch ``externalLink`` **without** the workspace `Authorization` header, adding ``httpHeaders``.
public struct ExternalLink: Codable, Sendable, Hashable {
    /// The absolute pre-signed URL; opaque.
    public var externalLink: String
    /// ISO-8601 UTC expiry with milliseconds, e.g. `2024-11-08T15:20:17.922Z`.
    public var expiration: String
    /// The chunk this link serves.
    public var chunkIndex: Int
    /// Index of the chunk's first row in the whole result.
    public var rowOffset: Int64
    /// Rows in the chunk.
    public var rowCount: Int64
    /// Size of the stored object (may differ from the manifest's uncompressed size).
    public var byteCount: Int64?
    /// The next chunk, when there is one (for EXTERNAL_LINKS the `next_*` fields live on the link).
    public var nextChunkIndex: Int?
    /// Path (no host) to fetch the next chunk's links.
    public var nextChunkInternalLink: String?
    /// Headers that must accompany the GET (e.g. encryption keys).
    public var httpHeaders: [String: String]?

    /// Creates a link value (for simulators and tests).
    public init(externalLink: String, expiration: String, chunkIndex: Int, rowOffset: Int64, rowCount: Int64,
                byteCount: Int64? = nil, nextChunkIndex: Int? = nil, nextChunkInternalLink: String? = nil,
                httpHeaders: [String: String]? = nil) {
        self.externalLink = externalLink
        self.expiration = expiration
        self.chunkIndex = chunkIndex
        self.rowOffset = rowOffset
        self.rowCount = rowCount
        self.byteCount = byteCount
        self.nextChunkIndex = nextChunkIndex
        self.nextChunkInternalLink = nextChunkInternalLink
        self.httpHeaders = httpHeaders
    }

    enum CodingKeys: String, CodingKey {
        case externalLink = "external_link"
        case expiration
        case chunkIndex = "chunk_index"
        case rowOffset = "row_offset"
        case rowCount = "row_count"
        case byteCount = "byte_count"
        case nextChunkIndex = "next_chunk_index"
        case nextChunkInternalLink = "next_chunk_internal_link"
        case httpHeaders = "http_headers"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        externalLink = try c.decode(String.self, forKey: .externalLink)
        expiration = try c.decodeIfPresent(String.self, forKey: .expiration) ?? ""
        chunkIndex = try c.flexibleInt(forKey: .chunkIndex)
        rowOffset = try c.flexibleInt64IfPresent(forKey: .rowOffset) ?? 0
        rowCount = try c.flexibleInt64IfPresent(forKey: .rowCount) ?? 0
        byteCount = try c.flexibleInt64IfPresent(forKey: .byteCount)
        nextChunkIndex = try c.flexibleIntIfPresent(forKey: .nextChunkIndex)
        nextChunkInternalLink = try c.decodeIfPresent(String.self, forKey: .nextChunkInternalLink)
        httpHeaders = try c.decodeIfPresent([String: String].self, forKey: .httpHeaders)
    }
}

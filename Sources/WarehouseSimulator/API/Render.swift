import CDFSyncCore
import Foundation
import Synchronization
import NIOCore

/// Renders statement responses, result chunks and external links.
extension Simulator {
    func renderStatement(_ r: StatementRecord, host: String) -> APIResponse {
        let st = r.state(at: clock.now, resultTTL: configuration.resultTTL)
        var out = ByteBuffer()
        out.reserveCapacity(4096)
        out.writeStaticString("{\"statement_id\":")
        out.writeJSONString(r.id)
        out.writeStaticString(",\"status\":{\"state\":\"")
        out.writeString(st)
        out.writeStaticString("\"")
        if st == "FAILED", case .failure(let e) = r.outcome {
            out.writeStaticString(",\"error\":{\"error_code\":")
            out.writeJSONString(e.errorCode)
            out.writeStaticString(",\"message\":")
            out.writeJSONString(e.message)
            out.writeStaticString("}")
            if configuration.includeSQLState && e.plainMessage == nil {
                out.writeStaticString(",\"sql_state\":")
                out.writeJSONString(e.sqlState)
            }
        }
        out.writeStaticString("}")
        if st == "SUCCEEDED", case .success(let result) = r.outcome {
            out.writeStaticString(",\"manifest\":")
            appendManifest(r, result, out: &out)
            out.writeStaticString(",\"result\":")
            if r.chunkCount == 0 {
                out.writeStaticString("{}")
            } else if r.external {
                out.writeStaticString("{\"external_links\":[")
                appendLink(r, chunk: 0, host: host, out: &out)
                out.writeStaticString("]}")
            } else {
                appendInlineChunk(r, chunk: 0, out: &out)
            }
        }
        out.writeStaticString("}")
        return APIResponse(status: 200, body: out)
    }

    func appendManifest(_ r: StatementRecord, _ result: ResultSet, out: inout ByteBuffer) {
        var w = JSONWriter(reservingCapacity: 1024)
        w.beginObject()
        w.key("format")
        w.string(r.format)
        w.key("schema")
        w.beginObject()
        w.key("column_count")
        w.int(Int64(result.columns.count))
        if !result.columns.isEmpty {
            w.key("columns")
            w.beginArray()
            for (i, c) in result.columns.enumerated() {
                w.beginObject()
                w.key("name")
                w.string(c.name)
                w.key("type_text")
                w.string(c.type.text)
                w.key("type_name")
                w.string(c.type.name)
                w.key("position")
                w.int(Int64(i))
                if let p = c.type.precision {
                    w.key("type_precision")
                    w.int(Int64(p))
                }
                if let s = c.type.scale {
                    w.key("type_scale")
                    w.int(Int64(s))
                }
                if let it = c.type.intervalType {
                    w.key("type_interval_type")
                    w.string(it)
                }
                w.endObject()
            }
            w.endArray()
        }
        w.endObject()
        w.key("total_chunk_count")
        w.int(Int64(r.chunkCount))
        let perRow = max(1, result.rows.estimatedBytesPerRow)
        if r.chunkCount > 0 {
            w.key("chunks")
            w.beginArray()
            for i in 0..<r.chunkCount {
                let range = r.chunkRange(i)
                w.beginObject()
                w.key("chunk_index")
                w.int(Int64(i))
                w.key("row_offset")
                w.int(Int64(range.lowerBound))
                w.key("row_count")
                w.int(Int64(range.count))
                if r.external {
                    w.key("byte_count")
                    w.int(Int64(range.count * perRow))
                }
                w.endObject()
            }
            w.endArray()
        }
        w.key("total_row_count")
        w.int(Int64(r.rowCount))
        if r.external {
            w.key("total_byte_count")
            w.int(Int64(r.rowCount * perRow))
        }
        w.key("truncated")
        w.bool(result.truncated)
        w.endObject()
        out.writeBytes(w.bytes)
    }

    func internalLink(_ r: StatementRecord, chunk: Int) -> String {
        let path = "/api/2.0/sql/statements/\(r.id)/result/chunks/\(chunk)"
        return configuration.requireChunkLinkQuery ? path + "?row_offset=\(r.chunkRange(chunk).lowerBound)" : path
    }

    /// `{"chunk_index":..,"row_offset":..,"row_count":..`: how every chunk object (inline or a link) starts.
    func openChunk(_ chunk: Int, _ range: Range<Int>, out: inout ByteBuffer) {
        out.writeStaticString("{\"chunk_index\":")
        out.writeDecimal(chunk)
        out.writeStaticString(",\"row_offset\":")
        out.writeDecimal(range.lowerBound)
        out.writeStaticString(",\"row_count\":")
        out.writeDecimal(range.count)
    }

    /// `,"next_chunk_index":..,"next_chunk_internal_link":".."` unless `chunk` is the last.
    func appendNextChunk(_ r: StatementRecord, after chunk: Int, out: inout ByteBuffer) {
        guard chunk + 1 < r.chunkCount else { return }
        out.writeStaticString(",\"next_chunk_index\":")
        out.writeDecimal(chunk + 1)
        out.writeStaticString(",\"next_chunk_internal_link\":")
        out.writeJSONString(internalLink(r, chunk: chunk + 1))
    }

    /// `{"chunk_index":..,"row_offset":..,"row_count":..,"data_array":[..],"next_chunk_index":..,...}`
    func appendInlineChunk(_ r: StatementRecord, chunk: Int, out: inout ByteBuffer) {
        guard case .success(let result) = r.outcome else { return }
        let range = r.chunkRange(chunk)
        openChunk(chunk, range, out: &out)
        out.writeStaticString(",\"data_array\":[")
        result.rows.renderJSON(range, into: &out)
        out.writeStaticString("]")
        appendNextChunk(r, after: chunk, out: &out)
        out.writeStaticString("}")
    }

    func signature(path: String, expires: Int64) -> String {
        var h = StableHash()
        h.combine(Array("\(linkSecret)|\(path)|\(expires)".utf8))
        let v = h.value
        var h2 = StableHash()
        h2.combine(Array("\(v)|\(linkSecret &* 31)".utf8))
        return String(v, radix: 16) + String(h2.value, radix: 16)
    }

    /// The file a link serves: a compact JSON array of rows, or CSV (header only in chunk 0).
    func renderBlob(_ r: StatementRecord, chunk: Int, into out: inout ByteBuffer) {
        guard case .success(let result) = r.outcome else { return }
        let range = r.chunkRange(chunk)
        if r.format == "CSV" {
            if chunk == 0 {
                for (i, c) in result.columns.enumerated() {
                    if i > 0 { out.writeInteger(UInt8(ascii: ",")) }
                    out.writeCSVField(c.name)
                }
                out.writeStaticString("\r\n")
            }
            result.rows.renderCSV(range, into: &out)
        } else {
            out.writeInteger(UInt8(ascii: "["))
            result.rows.renderJSON(range, into: &out)
            out.writeInteger(UInt8(ascii: "]"))
        }
    }

    func appendLink(_ r: StatementRecord, chunk: Int, host: String, out: inout ByteBuffer) {
        let range = r.chunkRange(chunk)
        let path = "/_blob/\(r.id)/\(chunk)"
        let expiresMillis = clock.nowMillis + Int64(configuration.linkTTL * 1000)
        let expires = expiresMillis / 1000
        let url = "http://\(host)\(path)?X-Sim-Expires=\(expires)&X-Sim-Signature=\(signature(path: path, expires: expires))"
        let size = blobSize(r, chunk: chunk)
        openChunk(chunk, range, out: &out)
        out.writeStaticString(",\"byte_count\":")
        out.writeDecimal(size)
        appendNextChunk(r, after: chunk, out: &out)
        out.writeStaticString(",\"external_link\":")
        out.writeJSONString(url)
        out.writeStaticString(",\"expiration\":")
        out.writeJSONString(Timestamp.format(millis: expiresMillis))
        out.writeStaticString("}")
    }

    /// The exact size of a chunk's file. The rendered bytes are kept (bounded) for the blob GET that follows.
    func blobSize(_ r: StatementRecord, chunk: Int) -> Int { blob(r, chunk: chunk).readableBytes }

    /// The bytes of a chunk's file (from the cache, or rendered again). Shared and never modified once cached:
    /// a response sends it as its body without a copy (a `ByteBuffer` copy shares its storage).
    func blob(_ r: StatementRecord, chunk: Int) -> ByteBuffer {
        // Statements answered from the result cache share their origin's files.
        let key = "\(r.resultID)/\(chunk)"
        if let b = blobCache.withLock({ $0.entries[key] }) { return b }
        // Sized from the bytes per row of the files rendered so far (untouched capacity costs no memory), so a
        // large chunk is not copied through a dozen doublings.
        let rows = r.chunkRange(chunk).count
        let perRow = blobCache.withLock { $0.bytesPerRowHint }
        var b = ByteBufferAllocator().buffer(capacity: min(1 << 16 + rows * (perRow + perRow / 8), 1 << 30))
        renderBlob(r, chunk: chunk, into: &b)
        blobCache.withLock { cache in
            if rows > 0 { cache.bytesPerRowHint = max(cache.bytesPerRowHint, b.readableBytes / rows + 1) }
            cache.put(key, b)
        }
        return b
    }
}

/// Rendered chunk files by "statement/chunk", oldest dropped first beyond `limit` bytes.
struct BlobCache: Sendable {
    var entries: [String: ByteBuffer] = [:]
    var order: [String] = []
    var bytes = 0
    var limit: Int
    /// The largest bytes per row of a file rendered so far (a capacity hint for the next one).
    var bytesPerRowHint = 64

    mutating func put(_ key: String, _ value: ByteBuffer) {
        if let old = entries[key] {
            bytes -= old.readableBytes
        } else {
            order.append(key)
        }
        entries[key] = value
        bytes += value.readableBytes
        while bytes > limit, !order.isEmpty {
            let k = order.removeFirst()
            if let v = entries.removeValue(forKey: k) { bytes -= v.readableBytes }
        }
    }
}

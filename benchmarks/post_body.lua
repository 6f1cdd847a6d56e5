-- wrk script: POST a prepared body from a file (binary V2 tensors, or any JSON), e.g.
--
--   WRK_BODY=/tmp/body.bin WRK_CONTENT_TYPE=application/octet-stream WRK_HEADER_LENGTH=180 \
--     wrk -t2 -c8 -d10s --latency -s benchmarks/post_body.lua http://127.0.0.1:5000/v2/models/iris/infer
--
-- WRK_HEADER_LENGTH, when set, is sent as Inference-Header-Content-Length (the V2 binary extension).

local file = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE") or "application/json"
local header_length = os.getenv("WRK_HEADER_LENGTH")
if header_length and header_length ~= "" then
  wrk.headers["Inference-Header-Content-Length"] = header_length
end

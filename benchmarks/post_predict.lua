-- wrk script: POST /predict with one Iris row, counting every request written.
--
--   wrk -t2 -c16 -d10s --latency -s benchmarks/post_predict.lua http://127.0.0.1:5000/predict
--
-- Defining request() makes wrk call it once per request, just before writing it to the socket,
-- so the per-thread "sent" counters add up to the requests the server received; done() prints
-- the sum on a "sent: N" line. wrk's own "N requests in ..." line counts completed responses
-- only: requests in flight when the duration ends were received (and counted) by the server but
-- are not reported, so "sent" is what prediction_requests_total must match exactly.
-- wrk calls request() once more, on the first thread before the run, to check that the script
-- builds a valid request; that call writes nothing, so done() starts the sum at -1.

wrk.method = "POST"
wrk.body = '{"features": [5.1, 3.5, 1.4, 0.2]}'
wrk.headers["Content-Type"] = "application/json"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  sent = 0
  prepared = wrk.format()
end

function request()
  sent = sent + 1
  return prepared
end

function done(summary, latency, requests)
  local total = -1 -- the verification call wrk makes before the run
  for _, thread in ipairs(threads) do
    total = total + thread:get("sent")
  end
  io.write(string.format("sent: %d\n", total))
end

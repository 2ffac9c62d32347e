-- Allow every workload.  For trying tether out and for measuring its overhead; never for
-- production.

function decide(input)
  return { allow = true, reasons = { "allow-all policy" } }
end

-- Argo CD health check for headroom.dev/AgentSession (see docs/argocd.md).
--   Progressing  no status yet, the operator has not seen the latest spec, Pending
--   Healthy      Running, or Succeeded (the run finished)
--   Suspended    Waiting: no account has headroom; the operator wakes the session by itself
--   Degraded     Failed (retries exhausted, too many swaps, an invalid spec)
local hs = {}

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function described(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    if c.reason ~= nil and c.reason ~= "" then
      return c.reason .. ": " .. c.message
    end
    return c.message
  end
  return fallback
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to place the session"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local phase = status.phase
local ready = condition(status, "Ready")
if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = described(condition(status, "Completed"), "The run finished")
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = described(ready, "The session failed")
elseif phase == "Waiting" then
  hs.status = "Suspended"
  local until_ = ""
  if status.waitingUntil ~= nil then
    until_ = " until " .. status.waitingUntil
  end
  hs.message = described(ready, "No account has headroom" .. until_)
elseif phase == "Running" then
  if ready ~= nil and ready.status == "False" then
    hs.status = "Progressing"
  else
    hs.status = "Healthy"
  end
  local account = status.account or "an account"
  hs.message = described(ready, "The agent runs on " .. account)
else
  -- Pending (placing, backing off between attempts) and any phase added later.
  hs.status = "Progressing"
  hs.message = described(condition(status, "Scheduled"), "Phase " .. tostring(phase))
end
return hs

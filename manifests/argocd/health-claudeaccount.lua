-- Argo CD health check for headroom.dev/ClaudeAccount and ClusterClaudeAccount (one status
-- shape for both kinds; see docs/argocd.md).
--   Progressing  no status yet, or the operator has not seen the latest spec
--   Healthy      Available
--   Suspended    Walled (usage window exhausted or a drill; it resets by itself) or Paused
--   Degraded     AuthFailed (the API refused the credentials), Unknown (the Secret or its
--                key is missing or unreadable) or Duplicate (an older account object holds
--                the same credential): each needs a person to fix the Secret or the objects
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
  hs.message = "Waiting for the operator to verify the credentials"
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
if phase == "Available" then
  hs.status = "Healthy"
  hs.message = described(ready, "Ready for new sessions")
elseif phase == "Walled" then
  hs.status = "Suspended"
  local until_ = ""
  if status.walledUntil ~= nil then
    until_ = " until " .. status.walledUntil
  end
  hs.message = described(condition(status, "Walled"), "Usage limit reached" .. until_)
elseif phase == "Paused" then
  hs.status = "Suspended"
  hs.message = described(ready, "spec.paused is true")
elseif phase == "AuthFailed" then
  hs.status = "Degraded"
  hs.message = described(condition(status, "CredentialsValid"), "The API rejected the credentials")
elseif phase == "Duplicate" then
  hs.status = "Degraded"
  hs.message = described(condition(status, "DuplicateCredential"), "Another account holds the same credential")
elseif phase == "Unknown" then
  hs.status = "Degraded"
  hs.message = described(condition(status, "CredentialsValid"), "The credentials could not be read")
else
  hs.status = "Progressing"
  hs.message = "Phase " .. tostring(phase)
end
return hs

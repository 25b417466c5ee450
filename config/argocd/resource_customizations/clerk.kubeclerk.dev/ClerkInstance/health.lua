-- Argo CD health check for kubeclerk's ClerkInstance (clerk.kubeclerk.dev).
--
-- The status follows kstatus (sigs.k8s.io/cli-utils/pkg/kstatus): Ready is always set, True or
-- False with a reason; Reconciling and Stalled are present only while True; each condition and
-- status.observedGeneration carry the generation they describe. Written by kubeclerk in
-- internal/controller/clerkinstance_controller.go (reasons in internal/instance/reasons.go).
--
--   deletionTimestamp set                        Progressing  (Argo CD itself reports "Pending deletion")
--   no Ready, or Ready of an older generation    Progressing  "Waiting for kubeclerk to observe generation N"
--   Stalled=True                                 Degraded     AuthenticationFailed (Clerk refused the key),
--                                                             SecretNotFound with a malformed key,
--                                                             InvalidSpec: a person must fix the key or spec
--   Reconciling=True                             Progressing  SecretNotFound while the Secret or its entry
--                                                             is missing (picked up as soon as it appears),
--                                                             ClerkUnavailable (retried with backoff)
--   status.observedGeneration older              Progressing  "Waiting for kubeclerk to observe generation N"
--   Ready=True                                   Healthy      Connected
--   anything else                                Progressing
--
-- Uses no Lua standard library, so it runs as an argocd-cm customization without
-- resource.customizations.useOpenLibs.
local hs = {}

local function number(v)
  if type(v) == "number" then
    return v
  end
  return 0
end

-- describe is "<reason>: <message>", as kubeclerk's conditions give them.
local function describe(c)
  local reason = c.reason
  if type(reason) ~= "string" or reason == "" then
    reason = c.type
  end
  if type(c.message) == "string" and c.message ~= "" then
    return reason .. ": " .. c.message
  end
  return reason
end

local generation = 0
if obj.metadata ~= nil then
  generation = number(obj.metadata.generation)
end

local ready = nil
local reconciling = nil
local stalled = nil
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" then
      ready = c
    elseif c.type == "Reconciling" and c.status == "True" then
      reconciling = c
    elseif c.type == "Stalled" and c.status == "True" then
      stalled = c
    end
  end
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Deleting"
  return hs
end

local waiting = "Waiting for kubeclerk to observe generation " .. generation

-- kubeclerk writes Ready, Reconciling and Stalled together: Ready's generation is theirs.
if ready == nil or number(ready.observedGeneration) < generation then
  hs.status = "Progressing"
  hs.message = waiting
  return hs
end

if stalled ~= nil then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

if reconciling ~= nil then
  hs.status = "Progressing"
  hs.message = describe(reconciling)
  return hs
end

if number(obj.status.observedGeneration) < generation then
  hs.status = "Progressing"
  hs.message = waiting
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end

hs.status = "Progressing"
hs.message = describe(ready)
return hs

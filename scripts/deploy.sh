#!/usr/bin/env bash
# Deploy Anvyl to Google Cloud Run with gcloud: APIs, Artifact Registry, images, Cloud SQL, the bucket,
# secrets, service accounts, then gpt-oss (GPU), the MCP hub and the orchestrator; a smoke test last.
# Each resource is described before it is created, so a second run creates nothing that exists.
set -Eeuo pipefail  # -E: the ERR trap below also fires inside functions

usage() {
  cat <<'EOF'
Usage: scripts/deploy.sh [--dry-run] [--local-docker] [--tag TAG] [--no-gpt-oss] [--no-smoke-test]
       scripts/deploy.sh --destroy [--yes] [--dry-run]

Deploys Anvyl to Google Cloud Run in PROJECT_ID (REGION, default us-central1).

Environment:
  PROJECT_ID      Google Cloud project (required)
  REGION          region of every resource (default us-central1; Cloud Run GPUs: us-central1, europe-west4, ...)
  GCS_BUCKET      bucket of the workspaces' files (required)
  LLM_API_KEY     key of the cloud model provider (optional; stored in Secret Manager)
  ANVYL_LLM_PROVIDER  which provider LLM_API_KEY is for: openai (default), anthropic, xai, groq
  ANVYL_API_KEY   the orchestrator's API key (default: one generated into Secret Manager)
  ANVYL_PREFIX    prefix of every resource name (default anvyl)

Flags:
  --dry-run        print every command (gcloud, docker, curl) and change nothing; calls nothing
  --local-docker   build the images with the local Docker and push them (default: Cloud Build)
  --tag TAG        image tag (default: the git commit, or "latest")
  --no-gpt-oss     skip the gpt-oss GPU service (use LLM_API_KEY's provider only)
  --no-smoke-test  skip the final health check and task
  --destroy        delete everything this script creates (asks to type the project id; --yes skips)
  --yes            do not ask for confirmation
  -h, --help       this text
EOF
}

dry_run=0 local_docker=0 destroy=0 assume_yes=0 gpt_oss=1 smoke=1 tag=""
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry_run=1 ;;
    --local-docker) local_docker=1 ;;
    --tag) [ $# -ge 2 ] || { echo "--tag needs a value" >&2; exit 2; }; tag=$2; shift ;;
    --tag=*) tag=${1#--tag=} ;;
    --no-gpt-oss) gpt_oss=0 ;;
    --no-smoke-test) smoke=0 ;;
    --destroy) destroy=1 ;;
    --yes | -y) assume_yes=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

cd "$(dirname "$0")/.."
PROJECT_ID=${PROJECT_ID:-}
REGION=${REGION:-us-central1}
GCS_BUCKET=${GCS_BUCKET:-}
LLM_API_KEY=${LLM_API_KEY:-}
PROVIDER=${ANVYL_LLM_PROVIDER:-openai}
PREFIX=${ANVYL_PREFIX:-anvyl}
[ -n "$PROJECT_ID" ] || { echo "set PROJECT_ID (the Google Cloud project)" >&2; exit 2; }
[ -n "$GCS_BUCKET" ] || [ "$destroy" = 1 ] || { echo "set GCS_BUCKET (the workspaces' bucket)" >&2; exit 2; }
case $PROVIDER in openai | anthropic | xai | groq) ;; *)
  echo "ANVYL_LLM_PROVIDER=$PROVIDER: one of openai, anthropic, xai, groq" >&2; exit 2 ;;
esac
if [ -z "$tag" ]; then tag=$(git rev-parse --short=12 HEAD 2>/dev/null || echo latest); fi

REGISTRY="$REGION-docker.pkg.dev/$PROJECT_ID/$PREFIX"
SQL_INSTANCE="$PREFIX-db"
SQL_CONNECTION="$PROJECT_ID:$REGION:$SQL_INSTANCE"
SA_DOMAIN="$PROJECT_ID.iam.gserviceaccount.com"
SA_ORCHESTRATOR="$PREFIX-orchestrator@$SA_DOMAIN"
SA_WORKER="$PREFIX-worker@$SA_DOMAIN"
SA_HUB="$PREFIX-mcp-hub@$SA_DOMAIN"
SA_GPT_OSS="$PREFIX-gpt-oss@$SA_DOMAIN"
SECRET_API_KEY="$PREFIX-api-key"
SECRET_HUB_TOKEN="$PREFIX-mcp-hub-token"
SECRET_DB_PASSWORD="$PREFIX-db-password"
SECRET_DB_URL="$PREFIX-database-url"
SECRET_FERNET="$PREFIX-secret-key"
SECRET_LLM="$PREFIX-llm-api-key"
P=(--project "$PROJECT_ID")
R=(--region "$REGION")

# Steps, commands, and what failed -----------------------------------------------------------------

step=""
begin() {
  step=$1
  echo "==> $step"
}
failed() {
  local rc=$?
  echo "deploy.sh: step \"$step\" failed (exit $rc); nothing after it ran. Fix it and run deploy.sh again: what exists is kept." >&2
  exit "$rc"
}
trap failed ERR

show() {  # a command as it would be typed, with secrets masked (their values never reach the terminal)
  local out="" arg
  for arg in "$@"; do
    if [ -n "${MASK:-}" ] && [[ $arg == *"$MASK"* ]]; then arg=${arg//"$MASK"/********}; fi
    out+=" $(printf '%q' "$arg")"
  done
  echo "   ${out# }"
}

run() {  # a command that changes something: printed; not run in a dry run
  show "$@"
  [ "$dry_run" = 1 ] || "$@"
}

exists() {  # a read-only describe: true when the resource exists (a dry run calls nothing: "missing")
  [ "$dry_run" = 0 ] || return 1
  "$@" >/dev/null 2>&1
}

gcloud_value() {  # the output of a read-only gcloud call (empty in a dry run)
  [ "$dry_run" = 0 ] || return 0
  gcloud "$@" 2>/dev/null || true
}

# Secret values without a trailing newline: Secret Manager keeps every byte, and a token's header
# must not end in one.
random_secret() { printf '%s' "$(openssl rand -hex 32)"; }
fernet_key() { printf '%s' "$(openssl rand -base64 32 | tr '+/' '-_')"; }

ensure_secret() {  # NAME VALUE-PRODUCER...: create the secret with a first version from stdin
  local name=$1
  shift
  if exists gcloud secrets describe "$name" "${P[@]}"; then
    echo "   secret $name exists"
    return
  fi
  show gcloud secrets create "$name" --replication-policy=automatic --data-file=- "${P[@]}"
  echo "     (its value on stdin: $1)"
  [ "$dry_run" = 1 ] || "$@" | gcloud secrets create "$name" --replication-policy=automatic --data-file=- "${P[@]}"
}

has_binding() {  # RESOURCE-GET-POLICY-COMMAND... -- MEMBER ROLE
  local member role policy
  policy=$("${@:1:$#-3}" --format=json 2>/dev/null || echo '{}')
  member=${*: -2:1}
  role=${*: -1}
  ROLE=$role MEMBER=$member python3 -c '
import json, os, sys
policy = json.load(sys.stdin)
sys.exit(0 if any(b.get("role") == os.environ["ROLE"] and os.environ["MEMBER"] in b.get("members", [])
                  for b in policy.get("bindings", [])) else 1)' <<<"$policy"
}

bind() {  # KIND TARGET MEMBER ROLE: an IAM binding, added only when missing
  local kind=$1 target=$2 member=$3 role=$4 get add
  case $kind in
    project) get=(gcloud projects get-iam-policy "$PROJECT_ID"); add=(gcloud projects add-iam-policy-binding "$PROJECT_ID" --condition=None) ;;
    secret) get=(gcloud secrets get-iam-policy "$target" "${P[@]}"); add=(gcloud secrets add-iam-policy-binding "$target" "${P[@]}") ;;
    sa) get=(gcloud iam service-accounts get-iam-policy "$target" "${P[@]}"); add=(gcloud iam service-accounts add-iam-policy-binding "$target" "${P[@]}") ;;
    bucket) get=(gcloud storage buckets get-iam-policy "gs://$target" "${P[@]}"); add=(gcloud storage buckets add-iam-policy-binding "gs://$target" "${P[@]}") ;;
    service) get=(gcloud run services get-iam-policy "$target" "${P[@]}" "${R[@]}"); add=(gcloud run services add-iam-policy-binding "$target" "${P[@]}" "${R[@]}") ;;
  esac
  if [ "$dry_run" = 0 ] && has_binding "${get[@]}" -- "$member" "$role"; then
    echo "   $role for $member on $kind ${target:-$PROJECT_ID} exists"
    return
  fi
  run "${add[@]}" --member="$member" --role="$role" --quiet --format=none
}

image() { echo "$REGISTRY/$1:$tag"; }

# --destroy ----------------------------------------------------------------------------------------

if [ "$destroy" = 1 ]; then
  if [ "$assume_yes" = 0 ] && [ "$dry_run" = 0 ]; then
    read -r -p "Delete Anvyl's services, database (with its data), bucket ${GCS_BUCKET:-(none)}, secrets, accounts and images in $PROJECT_ID? Type the project id: " answer
    [ "$answer" = "$PROJECT_ID" ] || { echo "not confirmed: nothing deleted" >&2; exit 1; }
  fi
  begin "Cloud Run services"
  for service in "$PREFIX-orchestrator" "$PREFIX-mcp-hub" "$PREFIX-gpt-oss"; do
    if [ "$dry_run" = 1 ] || exists gcloud run services describe "$service" "${P[@]}" "${R[@]}"; then
      run gcloud run services delete "$service" "${P[@]}" "${R[@]}" --quiet
    fi
  done
  # Workspace services the orchestrator created carry its label.
  for service in $(gcloud_value run services list "${P[@]}" "${R[@]}" --filter=metadata.labels.anvyl-managed=true --format='value(metadata.name)'); do
    run gcloud run services delete "$service" "${P[@]}" "${R[@]}" --quiet
  done
  begin "Cloud SQL"
  if [ "$dry_run" = 1 ] || exists gcloud sql instances describe "$SQL_INSTANCE" "${P[@]}"; then
    run gcloud sql instances delete "$SQL_INSTANCE" "${P[@]}" --quiet
  fi
  begin "bucket"
  if [ -n "$GCS_BUCKET" ] && { [ "$dry_run" = 1 ] || exists gcloud storage buckets describe "gs://$GCS_BUCKET" "${P[@]}"; }; then
    run gcloud storage rm --recursive "gs://$GCS_BUCKET" "${P[@]}" --quiet
  fi
  begin "secrets"
  for secret in "$SECRET_API_KEY" "$SECRET_HUB_TOKEN" "$SECRET_DB_PASSWORD" "$SECRET_DB_URL" "$SECRET_FERNET" "$SECRET_LLM"; do
    if [ "$dry_run" = 1 ] || exists gcloud secrets describe "$secret" "${P[@]}"; then
      run gcloud secrets delete "$secret" "${P[@]}" --quiet
    fi
  done
  begin "service accounts"
  for account in "$SA_ORCHESTRATOR" "$SA_WORKER" "$SA_HUB" "$SA_GPT_OSS"; do
    if [ "$dry_run" = 1 ] || exists gcloud iam service-accounts describe "$account" "${P[@]}"; then
      run gcloud iam service-accounts delete "$account" "${P[@]}" --quiet
    fi
  done
  begin "Artifact Registry"
  if [ "$dry_run" = 1 ] || exists gcloud artifacts repositories describe "$PREFIX" --location="$REGION" "${P[@]}"; then
    run gcloud artifacts repositories delete "$PREFIX" --location="$REGION" "${P[@]}" --quiet
  fi
  begin "network egress"
  if [ "$dry_run" = 1 ] || exists gcloud compute routers describe "$PREFIX-router" "${P[@]}" "${R[@]}"; then
    run gcloud compute routers delete "$PREFIX-router" "${P[@]}" "${R[@]}" --quiet
  fi
  echo "==> removed Anvyl from $PROJECT_ID"
  exit 0
fi

# Deploy -----------------------------------------------------------------------------------------

begin "preflight"
if [ "$dry_run" = 0 ]; then
  command -v gcloud >/dev/null || { echo "gcloud is needed: https://cloud.google.com/sdk/docs/install" >&2; false; }
  command -v openssl >/dev/null || { echo "openssl is needed to generate the secrets" >&2; false; }
  gcloud projects describe "$PROJECT_ID" --format='value(projectId)' >/dev/null
fi
MASK=$LLM_API_KEY

begin "APIs"
apis=(run.googleapis.com artifactregistry.googleapis.com cloudbuild.googleapis.com sqladmin.googleapis.com
  secretmanager.googleapis.com storage.googleapis.com iam.googleapis.com compute.googleapis.com)
enabled=" $(gcloud_value services list --enabled "${P[@]}" --format='value(config.name)' | tr '\n' ' ') "
missing=()
for api in "${apis[@]}"; do [[ $enabled == *" $api "* ]] || missing+=("$api"); done
if [ ${#missing[@]} -gt 0 ]; then run gcloud services enable "${missing[@]}" "${P[@]}"; else echo "   all enabled"; fi

begin "Artifact Registry"
if exists gcloud artifacts repositories describe "$PREFIX" --location="$REGION" "${P[@]}"; then
  echo "   repository $PREFIX exists"
else
  run gcloud artifacts repositories create "$PREFIX" --repository-format=docker --location="$REGION" \
    --description="Anvyl images" "${P[@]}"
fi

begin "images"
# The wheels of the locked dependencies, downloaded here; the builds install them offline.
images=(orchestrator mcp-hub agent)
[ "$gpt_oss" = 0 ] || images+=(gpt-oss)
todo=()
for name in "${images[@]}"; do
  if exists gcloud artifacts docker images describe "$(image "$name")" "${P[@]}"; then
    echo "   $(image "$name") exists"
  else
    todo+=("$name")
  fi
done
if [ ${#todo[@]} -gt 0 ]; then
  if [ "$local_docker" = 1 ]; then
    run gcloud auth configure-docker "$REGION-docker.pkg.dev" --quiet
    run env ANVYL_AGENT_IMAGE="$(image agent)" ANVYL_ORCHESTRATOR_IMAGE="$(image orchestrator)" \
      ANVYL_MCP_HUB_IMAGE="$(image mcp-hub)" scripts/build-images.sh agent orchestrator
    [ "$gpt_oss" = 0 ] || run docker build -f Dockerfile.gpt-oss -t "$(image gpt-oss)" .
    for name in "${todo[@]}"; do run docker push "$(image "$name")"; done
  else
    # Cloud Build: the first step downloads the locked wheels (scripts/build-images.sh, in an image
    # with uv), the next build the images from them; nothing is built on this machine.
    cloudbuild() {
      echo "steps:"
      echo "  - id: wheels"
      echo "    name: ghcr.io/astral-sh/uv:python3.12-bookworm"
      echo "    entrypoint: bash"
      echo "    args: ['-c', 'PYTHON_VERSION=3.12 WHEELS_ONLY=1 scripts/build-images.sh agent orchestrator']"
      for name in "${todo[@]}"; do
        case $name in
          orchestrator | mcp-hub) file=Dockerfile.orchestrator; extra=", '--target', '$name'" ;;
          agent) file=Dockerfile.agent; extra="" ;;
          gpt-oss) file=Dockerfile.gpt-oss; extra="" ;;
        esac
        echo "  - {name: gcr.io/cloud-builders/docker, waitFor: [wheels], args: ['build', '-f', '$file'$extra, '-t', '$(image "$name")', '.']}"
      done
      echo "images:"
      for name in "${todo[@]}"; do echo "  - '$(image "$name")'"; done
      echo "timeout: 3600s"
    }
    if [ "$dry_run" = 1 ]; then
      show gcloud builds submit . --config=CLOUDBUILD.yaml "${P[@]}" "${R[@]}"
      cloudbuild | sed 's/^/     | /'
    else
      config=$(mktemp /tmp/anvyl-cloudbuild.XXXXXX)
      trap 'rm -f "$config"' EXIT  # also when the build fails and the ERR trap exits
      cloudbuild >"$config"
      run gcloud builds submit . --config="$config" "${P[@]}" "${R[@]}"
      rm -f "$config"
    fi
  fi
fi

begin "Cloud SQL"
if exists gcloud sql instances describe "$SQL_INSTANCE" "${P[@]}"; then
  echo "   instance $SQL_INSTANCE exists"
else
  run gcloud sql instances create "$SQL_INSTANCE" --database-version=POSTGRES_15 --tier=db-g1-small \
    --region="$REGION" --storage-auto-increase "${P[@]}"
fi
if exists gcloud sql databases describe anvyl --instance="$SQL_INSTANCE" "${P[@]}"; then
  echo "   database anvyl exists"
else
  run gcloud sql databases create anvyl --instance="$SQL_INSTANCE" "${P[@]}"
fi
ensure_secret "$SECRET_DB_PASSWORD" random_secret
if [ -n "$(gcloud_value sql users list --instance="$SQL_INSTANCE" --filter=name=anvyl --format='value(name)' "${P[@]}")" ]; then
  echo "   user anvyl exists"
else
  db_password=$(gcloud_value secrets versions access latest --secret="$SECRET_DB_PASSWORD" "${P[@]}")
  MASK=${db_password:-$MASK}
  run gcloud sql users create anvyl --instance="$SQL_INSTANCE" --password="${db_password:-(from $SECRET_DB_PASSWORD)}" "${P[@]}"
  MASK=$LLM_API_KEY
fi

begin "bucket"
if exists gcloud storage buckets describe "gs://$GCS_BUCKET" "${P[@]}"; then
  echo "   gs://$GCS_BUCKET exists"
else
  run gcloud storage buckets create "gs://$GCS_BUCKET" --location="$REGION" --uniform-bucket-level-access "${P[@]}"
fi

begin "secrets"
database_url() {  # asyncpg over the Cloud SQL socket that --add-cloudsql-instances mounts
  printf 'postgresql+asyncpg://anvyl:%s@/anvyl?host=/cloudsql/%s' \
    "$(gcloud secrets versions access latest --secret="$SECRET_DB_PASSWORD" "${P[@]}")" "$SQL_CONNECTION"
}
given_api_key() { printf '%s' "$ANVYL_API_KEY"; }
given_llm_key() { printf '%s' "$LLM_API_KEY"; }
if [ -n "${ANVYL_API_KEY:-}" ]; then ensure_secret "$SECRET_API_KEY" given_api_key; else ensure_secret "$SECRET_API_KEY" random_secret; fi
ensure_secret "$SECRET_HUB_TOKEN" random_secret
ensure_secret "$SECRET_FERNET" fernet_key
ensure_secret "$SECRET_DB_URL" database_url
[ -z "$LLM_API_KEY" ] || ensure_secret "$SECRET_LLM" given_llm_key

begin "service accounts"
for entry in "$SA_ORCHESTRATOR:the orchestrator" "$SA_WORKER:workspace workers" "$SA_HUB:the MCP hub" "$SA_GPT_OSS:gpt-oss"; do
  account=${entry%%:*}
  if exists gcloud iam service-accounts describe "$account" "${P[@]}"; then
    echo "   $account exists"
  else
    run gcloud iam service-accounts create "${account%%@*}" --display-name="Anvyl: ${entry#*:}" "${P[@]}"
  fi
done
# The orchestrator: creates the workers' Cloud Run services and runs them as the worker account only.
bind project "" "serviceAccount:$SA_ORCHESTRATOR" roles/run.developer
bind sa "$SA_WORKER" "serviceAccount:$SA_ORCHESTRATOR" roles/iam.serviceAccountUser
bind project "" "serviceAccount:$SA_ORCHESTRATOR" roles/cloudsql.client
bind bucket "$GCS_BUCKET" "serviceAccount:$SA_ORCHESTRATOR" roles/storage.objectAdmin
orchestrator_secrets=("$SECRET_API_KEY" "$SECRET_HUB_TOKEN" "$SECRET_FERNET" "$SECRET_DB_URL")
[ -z "$LLM_API_KEY" ] || orchestrator_secrets+=("$SECRET_LLM")
for secret in "${orchestrator_secrets[@]}"; do
  bind secret "$secret" "serviceAccount:$SA_ORCHESTRATOR" roles/secretmanager.secretAccessor
done
# A worker: its bucket only. The hub: its token only. gpt-oss: nothing.
bind bucket "$GCS_BUCKET" "serviceAccount:$SA_WORKER" roles/storage.objectAdmin
bind secret "$SECRET_HUB_TOKEN" "serviceAccount:$SA_HUB" roles/secretmanager.secretAccessor

begin "network egress"
# The hub and gpt-oss take internal traffic only: the orchestrator reaches them through the VPC
# (Direct VPC egress, all traffic), and the internet (model providers, git) through Cloud NAT.
if exists gcloud compute routers describe "$PREFIX-router" "${P[@]}" "${R[@]}"; then
  echo "   router $PREFIX-router exists"
else
  run gcloud compute routers create "$PREFIX-router" --network=default "${P[@]}" "${R[@]}"
  run gcloud compute routers nats create "$PREFIX-nat" --router="$PREFIX-router" \
    --auto-allocate-nat-external-ips --nat-all-subnet-ip-ranges "${P[@]}" "${R[@]}"
fi

deploy_service() {  # NAME IMAGE gcloud-run-deploy-flags...: skipped when it already runs IMAGE
  local name=$1 img=$2 current
  shift 2
  current=$(gcloud_value run services describe "$name" "${P[@]}" "${R[@]}" --format='value(spec.template.spec.containers[0].image)')
  if [ "$current" = "$img" ]; then
    echo "   $name runs $img"
    return
  fi
  run gcloud run deploy "$name" --image="$img" "${P[@]}" "${R[@]}" --quiet "$@"
}
project_number=$(gcloud_value projects describe "$PROJECT_ID" --format='value(projectNumber)')
project_number=${project_number:-PROJECT_NUMBER}
url_of() { echo "https://$1-$project_number.$REGION.run.app"; }

if [ "$gpt_oss" = 1 ]; then
  begin "gpt-oss (Cloud Run GPU)"
  deploy_service "$PREFIX-gpt-oss" "$(image gpt-oss)" --gpu=1 --gpu-type=nvidia-l4 --no-cpu-throttling \
    --cpu=4 --memory=16Gi --max-instances=1 --port=8000 --timeout=3600 --ingress=internal \
    --no-invoker-iam-check --no-gpu-zonal-redundancy --service-account="$SA_GPT_OSS"
fi

begin "MCP hub"
deploy_service "$PREFIX-mcp-hub" "$(image mcp-hub)" --ingress=internal --no-invoker-iam-check --port=8765 \
  --service-account="$SA_HUB" --set-secrets="ANVYL_MCP_HUB_TOKEN=$SECRET_HUB_TOKEN:latest" \
  --set-env-vars="ANVYL_MCP_HUB_ALLOWED_HOSTS=$PREFIX-mcp-hub-$project_number.$REGION.run.app"

begin "orchestrator"
secrets="ANVYL_API_KEYS=$SECRET_API_KEY:latest,ANVYL_MCP_HUB_TOKEN=$SECRET_HUB_TOKEN:latest"
secrets+=",ANVYL_SECRET_KEY=$SECRET_FERNET:latest,ANVYL_DATABASE_URL=$SECRET_DB_URL:latest"
[ -z "$LLM_API_KEY" ] || secrets+=",LLM_API_KEY=$SECRET_LLM:latest"
env_vars="ANVYL_WORKSPACE_BACKEND=cloudrun,ANVYL_GCP_PROJECT=$PROJECT_ID,ANVYL_GCP_REGION=$REGION"
env_vars+=",ANVYL_GCS_BUCKET=$GCS_BUCKET,ANVYL_AGENT_IMAGE=$(image agent),ANVYL_CLOUDRUN_SERVICE_ACCOUNT=$SA_WORKER"
env_vars+=",ANVYL_LLM_PROVIDER=$PROVIDER,ANVYL_MCP_HUB_URL=$(url_of "$PREFIX-mcp-hub")"
[ "$gpt_oss" = 0 ] || env_vars+=",ANVYL_GPT_OSS_URL=$(url_of "$PREFIX-gpt-oss")/v1"
# The task queue works between requests: CPU always allocated, one instance kept.
deploy_service "$PREFIX-orchestrator" "$(image orchestrator)" --service-account="$SA_ORCHESTRATOR" \
  --add-cloudsql-instances="$SQL_CONNECTION" --set-secrets="$secrets" --set-env-vars="$env_vars" \
  --port=8080 --cpu=2 --memory=2Gi --min-instances=1 --no-cpu-throttling --timeout=3600 \
  --network=default --subnet=default --vpc-egress=all-traffic --allow-unauthenticated

begin "smoke test"
url=$(gcloud_value run services describe "$PREFIX-orchestrator" "${P[@]}" "${R[@]}" --format='value(status.url)')
url=${url:-$(url_of "$PREFIX-orchestrator")}
echo "   orchestrator: $url"
if [ "$smoke" = 1 ]; then
  run curl -fsS --max-time 30 "$url/health"
  if [ "$dry_run" = 0 ]; then
    key=$(gcloud secrets versions access latest --secret="$SECRET_API_KEY" "${P[@]}")
    answer=$(curl -fsS --max-time 300 "$url/orchestrate" -H "Authorization: Bearer $key" \
      -H 'content-type: application/json' \
      -d '{"query": "show a.md", "files": [{"name": "a.md", "content": "# smoke test\n"}]}')
    case $answer in
      *'"status":"succeeded"'* | *'"status": "succeeded"'*) echo "   a task succeeded" ;;
      *) echo "the smoke-test task did not succeed: $answer" >&2; false ;;
    esac
  else
    show curl -fsS --max-time 300 "$url/orchestrate" -H "Authorization: Bearer (from $SECRET_API_KEY)" \
      -H 'content-type: application/json' -d '{"query": "show a.md", "files": [...]}'
  fi
fi
echo "==> Anvyl runs at $url (API key: gcloud secrets versions access latest --secret=$SECRET_API_KEY --project=$PROJECT_ID)"

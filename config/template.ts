// The commented config `akmesh init` writes. Keep it in step with schema.ts defaults.
export const CONFIG_TEMPLATE = `# akmesh node configuration.
# Every key is optional; the values below are the defaults.

# Where blobs (data/blobs), the SQLite index (data/akmesh.db) and temp files live.
# Relative paths are relative to this file. The AKMESH_DATA environment variable overrides it.
dataDir: ./data

http:
  # Address and port package managers connect to (AKMESH_PORT overrides the port).
  host: 0.0.0.0
  port: 7070
  # Set when clients reach this node through a proxy under another URL; npm tarball links use it.
  # publicUrl: https://registry.example.com

limits:
  # Largest JSON metadata body (an npm publish carries its tarball base64-encoded inside it).
  metadataBytes: 128MB
  # Largest streamed upload (generic files).
  uploadBytes: 20GB
  # An upload spanning several requests (docker push's chunked blobs) idle this long is abandoned.
  uploadIdleSeconds: 3600

log:
  # fatal, error, warn, info, debug, trace or silent. Logs are JSON lines on stdout.
  level: info

# Each repository is served under /<name>/ and holds artifacts of one format.
#   format: npm      -> npm, yarn and pnpm:  npm config set registry http://HOST:7070/npm/
#   format: generic  -> any file by path:    curl -T file http://HOST:7070/files/some/path
#   format: pypi     -> twine and pip:       pip install --index-url http://HOST:7070/pypi/simple/ pkg
#   format: oci      -> docker, podman, skopeo, at /v2/<name>/: podman push HOST:7070/docker/app:1
# anonymousRead: whether reads need a token (writes always do).
repositories:
  - name: npm
    format: npm
    anonymousRead: true
  - name: files
    format: generic
    anonymousRead: true
  - name: docker
    format: oci
    anonymousRead: true
  - name: pypi
    format: pypi
    anonymousRead: true
`

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
  # What opening an uploaded archive (npm tarball, wheel, sdist) may cost; an archive over any
  # of these is refused with 413 naming the limit, before more of it is unpacked.
  archive:
    # Entries of any kind (files, directories, links).
    entries: 100000
    # Sum of the files' unpacked sizes.
    unpackedBytes: 2GB
    # Unpacked size of any one file.
    entryBytes: 1GB
    # Unpacked bytes per compressed byte (judged once more than 16 MiB are unpacked).
    ratio: 200
    # The files the registry reads from an archive (package.json, METADATA, PKG-INFO), together.
    extractBytes: 16MB
  # An upload spanning several requests (docker push's chunked blobs) idle this long is abandoned.
  uploadIdleSeconds: 3600

gc:
  # How often the node deletes blobs nothing references any more (deleted or replaced artifacts,
  # failed uploads, OCI blobs deleted from every image) and blob files a crash left without an
  # index row; "off" disables the periodic run (akmesh gc still works, and orphan files left by a
  # crash are still swept a grace period after start).
  interval: 6h
  # Nothing changed or read within this long is deleted: a publish between storing its bytes and
  # recording its artifact, a peer or client still being served.
  grace: 1h

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
  # A remote repository caches an upstream (generic only, for now): files are fetched on first
  # request, stored like published ones, and served from the cache from then on.
  # - name: vendor
  #   format: generic
  #   type: remote
  #   upstream: https://downloads.example.com/
  #   auth: { token: "\${VENDOR_TOKEN}" }   # or { username, password }; \${VAR} reads the environment
  #   timeouts: { response: 30s, idle: 30s }
  #   metadataTtl: 5m                       # metadata is asked for again after this
  #   negativeTtl: 1m                       # an upstream 404 is remembered this long
  #   offline: false                        # true: serve only what is cached
  #   quota: 10GiB                          # cached bytes kept here; past it the least recently used are evicted (refetched on request)
  # A remote OCI repository: a pull-through cache of a registry (its root URL; the registry's
  # token flow is followed with auth's username and password, or anonymously).
  # - name: hub
  #   format: oci
  #   type: remote
  #   upstream: https://registry.example.com/
  #   dockerHubLibrary: true                # "alpine" is asked as "library/alpine" (Docker Hub)
  # A virtual repository (generic, npm, pypi, oci) is one URL over local and remote repositories of its
  # format, asked in order; a package name any local member has is never served from a remote one.
  # - name: npm-all
  #   format: npm
  #   type: virtual
  #   members: [npm]                         # local and remote repositories of the same format
  #   defaultLocal: npm                      # publishes to npm-all land here (none: 405)
  #   allowRemoteOverride: []                # names remote members may serve although a local one has them
`

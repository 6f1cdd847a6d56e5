# Stand-in for the official python image (Debian slim): Debian's python3 with a virtualenv as the
# default python and pip, as the official image has them on PATH, and the host's CA bundle so pip
# in a build trusts the same roots as pip on the host. Built only where the real image cannot be pulled.
ARG ROOTFS
FROM ${ROOTFS}
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /usr/local/python
ENV PATH=/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8
CMD ["python3"]

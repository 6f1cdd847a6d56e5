variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"
}

variable "instance_type" {
  description = "EC2 instance type (x86_64). t3.medium (2 vCPU, 4 GiB) fits the three containers and the image builds."
  type        = string
  default     = "t3.medium"
}

variable "key_name" {
  description = "Name of an existing EC2 key pair for SSH. null: no key pair (no SSH login)."
  type        = string
  default     = null
}

variable "allowed_cidr" {
  description = "CIDR allowed to reach the API (5000), the UI (8501) and Prometheus (9090), e.g. \"203.0.113.7/32\" for your own address. No default on purpose: the services have no authentication of their own."
  type        = string

  validation {
    condition     = can(cidrhost(var.allowed_cidr, 0))
    error_message = "allowed_cidr must be a CIDR block such as 203.0.113.7/32."
  }
}

variable "ssh_cidr" {
  description = "CIDR allowed to SSH (22), e.g. \"203.0.113.7/32\". No default; 0.0.0.0/0 is refused."
  type        = string

  validation {
    condition     = can(cidrhost(var.ssh_cidr, 0)) && var.ssh_cidr != "0.0.0.0/0"
    error_message = "ssh_cidr must be a CIDR block such as 203.0.113.7/32, and not 0.0.0.0/0."
  }
}

variable "repo_url" {
  description = "Git URL of this repository, cloned on the instance (must be readable without credentials), e.g. https://github.com/you/mlops.git."
  type        = string

  # The value is written into the user data script, so no quotes or spaces.
  validation {
    condition     = can(regex("^(https://|ssh://|git@)[^'\"\\s]+$", var.repo_url))
    error_message = "repo_url must be an https://, ssh:// or git@ URL without quotes or spaces."
  }
}

variable "repo_branch" {
  description = "Branch or tag of repo_url to deploy."
  type        = string
  default     = "main"

  validation {
    condition     = can(regex("^[A-Za-z0-9._/-]+$", var.repo_branch))
    error_message = "repo_branch may contain only letters, digits and . _ / -."
  }
}

variable "root_volume_size" {
  description = "Root volume size in GiB (gp3, encrypted)."
  type        = number
  default     = 20
}

variable "name" {
  description = "Name prefix for the created resources."
  type        = string
  default     = "mlops-demo"
}

variable "tags" {
  description = "Extra tags applied to every resource."
  type        = map(string)
  default     = {}
}
